"""Substitution of ``{{ }}`` expressions, chaining references and delimited lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.toe.loops import DELIMITERS, split_delimited
from kiln.toe.variables import (
    SubstitutionError,
    chain_resolver,
    chained,
    parse_chain,
    substitute,
    substitute_text,
    variables_resolver,
)

VARS = variables_resolver({"Name": "world", "Path": "/opt/app", "Empty": ""})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello {{ Name }}", "hello world"),
        ("{{Name}}{{  Name  }}", "worldworld"),
        ("{{ name }}", "{{ name }}"),  # case-sensitive: unknown stays literal
        ("${AWS::Region} {{ Path }}/bin", "${AWS::Region} /opt/app/bin"),
        ("{{ loop.value }}", "{{ loop.value }}"),
        ("x{{ Empty }}y", "xy"),
        ("{ {Name} }", "{ {Name} }"),
    ],
)
def test_substitution(text: str, expected: str) -> None:
    assert substitute_text(text, VARS) == expected


def test_nested_structures_and_keys_untouched() -> None:
    value = {"{{ Name }}": ["a {{ Name }}", {"k": "{{ Path }}"}, 3, True]}
    assert substitute(value, VARS) == {"{{ Name }}": ["a world", {"k": "/opt/app"}, 3, True]}


def test_ssm_reference_is_a_clear_error() -> None:
    with pytest.raises(SubstitutionError, match="not available outside AWS"):
        substitute_text("{{ aws:ssm:/my/param }}", VARS)


def test_chaining_outputs_and_indexed_inputs() -> None:
    state = {
        "build": {
            "Download": {"inputs": [{"source": "s3://a", "destination": "/tmp/a"}, {"destination": "/tmp/b"}],
                         "outputs": {}},
            "Say": {"inputs": {"commands": ["echo"]}, "outputs": {"stdout": "hi"}},
        }
    }  # fmt: skip
    resolve = chained(VARS, chain_resolver(state))
    assert substitute_text("{{ build.Say.outputs.stdout }}", resolve) == "hi"
    assert substitute_text("{{ build.Download.inputs[1].destination }}", resolve) == "/tmp/b"
    assert substitute_text("{{ build.Download.inputs.destination }}", resolve) == "/tmp/a"
    with pytest.raises(SubstitutionError, match="has not run"):
        substitute_text("{{ build.Later.outputs.stdout }}", resolve)
    with pytest.raises(SubstitutionError, match="no entry 5"):
        substitute_text("{{ build.Download.inputs[5].destination }}", resolve)


def test_parse_chain() -> None:
    ref = parse_chain("validate.Step-1.inputs[2].path")
    assert ref is not None and (ref.phase, ref.step, ref.kind, ref.index, ref.field) == (
        "validate", "Step-1", "inputs", 2, "path",
    )  # fmt: skip
    assert parse_chain("Name") is None
    assert parse_chain("loop.value") is None


_names = st.from_regex(r"[A-Za-z0-9_-]{3,20}", fullmatch=True)
_plain = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30)


@settings(deadline=None)
@given(
    st.dictionaries(_names, _plain, min_size=1, max_size=5),
    st.lists(_plain, min_size=1, max_size=5),
    st.data(),
)
def test_property_substitution_replaces_exactly_the_known_names(
    variables: dict[str, str], chunks: list[str], data: st.DataObject
) -> None:
    names = sorted(variables)
    picks = [data.draw(st.sampled_from(names)) for _ in chunks]
    spaces = [data.draw(st.sampled_from(["", " ", "   "])) for _ in chunks]
    text = "".join(f"{c}{{{{{s}{n}{s}}}}}" for c, n, s in zip(chunks, picks, spaces, strict=True))
    expected = "".join(c + variables[n] for c, n in zip(chunks, picks, strict=True))
    assert substitute_text(text, variables_resolver(variables)) == expected


@settings(deadline=None)
@given(_plain)
def test_property_text_without_expressions_is_unchanged(text: str) -> None:
    assert substitute_text(text, variables_resolver({"abc": "x"})) == text


@settings(deadline=None)
@given(st.lists(st.text(min_size=0, max_size=10), min_size=1, max_size=8), st.sampled_from(DELIMITERS))
def test_property_delimited_split_round_trips(items: list[str], delimiter: str) -> None:
    items = [i.replace(delimiter, "") for i in items]
    joined = delimiter.join(items)
    if joined == "":
        assert split_delimited(joined, delimiter) == []
    else:
        assert split_delimited(joined, delimiter) == items
        assert delimiter.join(split_delimited(joined, delimiter)) == joined
