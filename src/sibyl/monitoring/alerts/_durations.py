"""Durations as users write them: ``"5m"``, ``"30s"``, ``"1h30m"``, ``"250ms"``, ``"1d"`` or a
plain number of seconds (``300``, ``"300"``). Parsed to float seconds; formatted back to the
shortest unit string (``300.0`` → ``"5m"``)."""

from __future__ import annotations

import math
import re

from sibyl.errors import InvalidInputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")
MAX_DURATION_S = 366 * 86400.0
"""Longest accepted duration (a year): longer ones are surely a unit mistake."""


def parse_duration(value: object, *, field: str) -> float:
    """``value`` in seconds: a non-negative number, a numeric string, or unit parts
    (``ms``, ``s``, ``m``, ``h``, ``d``, ``w``) such as ``"1h30m"``.

    Raises :class:`InvalidInputError` naming ``field`` for anything else, negatives, NaN and
    durations over a year.
    """
    seconds = _seconds(value, field)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION_S:
        raise _invalid(value, field, "a duration between 0 and 366d")
    return seconds


def _seconds(value: object, field: str) -> float:
    if isinstance(value, bool):
        raise _invalid(value, field, 'a duration such as "30s", "5m", "1h30m" or seconds')
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return float(text)
        except ValueError:
            pass
        if _WHOLE.fullmatch(text):
            return sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    raise _invalid(value, field, 'a duration such as "30s", "5m", "1h30m" or seconds')


def _invalid(value: object, field: str, expected: str) -> InvalidInputError:
    return InvalidInputError(f"'{field}' must be {expected}, got {value!r}", field=field)


def format_duration(seconds: float) -> str:
    """``seconds`` as unit parts, largest first (``5400`` → ``"1h30m"``, ``0.25`` → ``"250ms"``)."""
    if seconds <= 0:
        return "0s"
    millis = round(seconds * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
