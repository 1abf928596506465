"""Cron schedules in a time zone, with wall-clock semantics across DST changes.

croniter iterates *naive local* times here and each match is mapped to one UTC instant: a local time
the spring-forward gap skips runs at the moment the clock jumps (02:30 on the night Berlin goes from
02:00 to 03:00 runs at 03:00 CEST), and a local time the fall-back repeats runs once, at its first
occurrence. (croniter given aware times fires twice in the repeated hour.)

``cron(M H DoM Mon DoW)`` is the plain five-field form in parentheses; ``cron(M H DoM Mon DoW Y)`` is
EC2 Image Builder's / EventBridge's six-field form: ``?`` is ``*``, day-of-week counts 1=SUN..7=SAT,
the year must be ``*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

AWS_FORM = re.compile(r"^cron\((?P<body>[^()]*)\)$")
MAX_STEPS = 4000  # matches examined to find one fire time (a minute schedule over a DST night: ~200)
WINDOW = timedelta(hours=3)  # more than any DST shift: where the naive search starts


class ScheduleError(ValueError):
    """The expression or the time zone is not valid (the message says which and why)."""


def _aws_dow(field: str) -> str:
    """EventBridge day-of-week (1=SUN..7=SAT, names allowed) → cron's (0=SUN..6=SAT)."""
    if field in ("?", "*"):
        return "*"
    if "L" in field or "#" in field:
        raise ScheduleError(f"day-of-week {field!r}: 'L' and '#' are not supported")

    def shift(match: re.Match[str]) -> str:
        value = int(match.group(0))
        if not 1 <= value <= 7:
            raise ScheduleError(f"day-of-week {value} is outside 1-7 (1 = Sunday in the cron(...) form)")
        return str(value - 1)

    head, slash, step = field.partition("/")
    return re.sub(r"\d+", shift, head) + slash + step


def normalize(expression: str) -> str:
    """The five-field cron expression ``expression`` means (plain or ``cron(...)`` form)."""
    text = expression.strip()
    aws = AWS_FORM.match(text)
    fields = (aws["body"] if aws else text).split()
    if aws and len(fields) == 6:
        minute, hour, dom, month, dow, year = fields
        if year not in ("*", "?"):
            raise ScheduleError(f"year {year!r}: only '*' is supported")
        fields = [minute, hour, "*" if dom == "?" else dom, month, _aws_dow(dow)]
    if len(fields) != 5:
        raise ScheduleError(
            f"{expression!r}: expected 5 fields (minute hour day month weekday), "
            "or cron(...) with 5 or 6 fields"
        )
    five = " ".join(fields)
    if not croniter.is_valid(five):
        raise ScheduleError(f"{expression!r} is not a valid cron expression")
    return five


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None


@dataclass(frozen=True)
class Schedule:
    """A cron expression evaluated in ``timezone``; every method takes and returns aware UTC times."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", normalize(self.expression))
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def _instant(self, local: datetime) -> datetime:
        """The UTC instant of naive wall-clock ``local``; a time inside a gap → the end of the gap."""
        first = local.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        if first.astimezone(self.tz).replace(tzinfo=None) == local:
            return first  # exists (fold=0: the first of two when the hour repeats)
        # In the gap: fold=1 reads it with the offset after the change, i.e. an instant after the jump.
        after = local.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        lo, hi = min(first, after), max(first, after)
        while hi - lo > timedelta(seconds=1):  # the jump itself: last instant still before `local`
            mid = lo + (hi - lo) / 2
            if mid.astimezone(self.tz).replace(tzinfo=None) < local:
                lo = mid
            else:
                hi = mid
        return hi.replace(microsecond=0)

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when``."""
        start = (when.astimezone(self.tz).replace(tzinfo=None) - WINDOW).replace(second=0, microsecond=0)
        it = croniter(self.expression, start)
        for _ in range(MAX_STEPS):
            instant = self._instant(it.get_next(datetime))
            if instant > when:
                return instant
        raise ScheduleError(f"{self.expression!r} never fires")  # pragma: no cover - is_valid checks

    def last_at_or_before(self, when: datetime) -> datetime | None:
        """The latest fire time at or before ``when`` (None if none in the last ~4000 matches)."""
        start = (when.astimezone(self.tz).replace(tzinfo=None) + WINDOW).replace(second=0, microsecond=0)
        it = croniter(self.expression, start + timedelta(minutes=1))
        for _ in range(MAX_STEPS):
            instant = self._instant(it.get_prev(datetime))
            if instant <= when:
                return instant
        return None

    def due(self, after: datetime, now: datetime) -> datetime | None:
        """The latest fire time in (``after``, ``now``]: however many were missed, one run is due."""
        last = self.last_at_or_before(now)
        return last if last is not None and last > after else None
