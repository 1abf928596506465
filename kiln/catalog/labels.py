"""Labels on image versions: ``key=value`` pairs with Kubernetes' syntax rules, stored in ``image_labels``.

A key is an optional DNS-subdomain prefix and a name (``team``, ``example.com/tier``); a value is at
most 63 characters of the same alphabet as a name, or empty. The rules are Kubernetes' (labels are
meant to be selected on, so they stay short and unambiguous in a ``k=v`` filter).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog.catalog import Catalog
from kiln.catalog.models import ImageRow, LabelRow
from kiln.catalog.schemas import ImageRecord
from kiln.errors import NotFound, UsageError

NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
PREFIX_PART = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
VALUE_RULE = (
    "at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit"
)
KEY_HINT = "a label key is NAME or PREFIX/NAME, e.g. team or example.com/tier; NAME: " + VALUE_RULE


class LabelError(UsageError):
    """A label key or value breaks the syntax rules (exit code 2)."""


def check_key(key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if not NAME.match(name):
        raise LabelError(f"invalid label key {key!r}: the name part {name!r} is not valid", hint=KEY_HINT)
    if slash:
        parts = prefix.split(".")
        if len(prefix) > 253 or not all(PREFIX_PART.match(p) for p in parts):
            raise LabelError(
                f"invalid label key {key!r}: the prefix {prefix!r} is not a DNS subdomain",
                hint="a prefix is lower-case DNS labels separated by '.', at most 253 characters",
            )
    return key


def check_value(key: str, value: str) -> str:
    if value and not NAME.match(value):
        raise LabelError(f"invalid value {value!r} of label {key!r}", hint="a label value is " + VALUE_RULE)
    return value


def parse_assignment(text: str) -> tuple[str, str]:
    """``key=value`` → (key, value), both checked."""
    key, eq, value = text.partition("=")
    if not eq:
        raise LabelError(f"invalid label {text!r}: expected KEY=VALUE", hint="e.g. team=payments")
    return check_key(key), check_value(key, value)


def parse_assignments(texts: Iterable[str]) -> dict[str, str]:
    """Several ``key=value`` texts; a key given twice with different values is an error."""
    labels: dict[str, str] = {}
    for text in texts:
        key, value = parse_assignment(text)
        if labels.get(key, value) != value:
            raise LabelError(f"label {key!r} is given twice with different values")
        labels[key] = value
    return labels


def labels_of(s: Session, image_ids: Collection[int]) -> dict[int, dict[str, str]]:
    """Labels of each image id (absent ids: no labels)."""
    found: dict[int, dict[str, str]] = {}
    if not image_ids:
        return found
    query = select(LabelRow.image_id, LabelRow.key, LabelRow.value).order_by(LabelRow.key)
    if len(image_ids) <= 500:
        query = query.where(LabelRow.image_id.in_(image_ids))
    for image_id, key, value in s.connection().execute(query).all():
        if image_id in image_ids:
            found.setdefault(image_id, {})[key] = value
    return found


def _row_id(s: Session, image: ImageRecord) -> int:
    row_id = s.scalar(
        select(ImageRow.id).where(
            ImageRow.name == image.name,
            ImageRow.version == image.version,
            ImageRow.build_number == image.build,
        )
    )
    if row_id is None:  # removed between the two reads
        raise NotFound(f"no image {image.ref}")
    return row_id


def image_labels(catalog: Catalog, ref: str) -> dict[str, str]:
    image = catalog.get_image(ref)
    with catalog.session() as s:
        return labels_of(s, {row := _row_id(s, image)}).get(row, {})


def set_labels(catalog: Catalog, ref: str, labels: dict[str, str]) -> tuple[ImageRecord, dict[str, str]]:
    """Add or overwrite labels of one image version; returns it and its labels afterwards."""
    for key, value in labels.items():
        check_key(key)
        check_value(key, value)
    image = catalog.get_image(ref)
    with catalog.session(write=True) as s, s.begin():
        row_id = _row_id(s, image)
        existing = {r.key: r for r in s.scalars(select(LabelRow).where(LabelRow.image_id == row_id))}
        for key, value in labels.items():
            if key in existing:
                existing[key].value = value
            else:
                s.add(LabelRow(image_id=row_id, key=key, value=value))
        s.flush()
        return image, labels_of(s, {row_id}).get(row_id, {})


def remove_labels(catalog: Catalog, ref: str, keys: Iterable[str]) -> tuple[ImageRecord, dict[str, str]]:
    """Remove labels by key (a key the image does not have is an error naming the ones it has)."""
    wanted = [check_key(k) for k in keys]
    image = catalog.get_image(ref)
    with catalog.session(write=True) as s, s.begin():
        row_id = _row_id(s, image)
        existing = {r.key: r for r in s.scalars(select(LabelRow).where(LabelRow.image_id == row_id))}
        missing = [k for k in wanted if k not in existing]
        if missing:
            have = ", ".join(sorted(existing)) or "none"
            raise NotFound(f"{image.ref} has no label {', '.join(missing)}", hint=f"its labels: {have}")
        for key in wanted:
            s.delete(existing.pop(key))
        return image, {k: r.value for k, r in sorted(existing.items())}
