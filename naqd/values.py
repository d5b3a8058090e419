"""Values as people write them, shared by the config loader and the client's code
schedules: human durations (`500ms`, `30s`, `5m`, `2h`, `7d`, `1h30m`) to float seconds,
so every timeout reads the same way and nobody has to guess the unit, and `describe`,
which names a value in an error message in YAML words. Standard library only."""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(rf"{_NUMBER}")
_COMPOUND = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")


def _expected(value: object) -> ValueError:
    return ValueError(f"expected a duration like 30s, 5m, 2h, got {describe(value)}")


def parse_duration(value: str | int | float) -> float:
    """Seconds for `value`: a number (already seconds) or a string like `1h30m`.

    Raises ValueError with a message fit to show the operator as-is.
    """
    if isinstance(value, bool):
        raise _expected(value)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f"a duration cannot be negative, got {describe(value)}")
        if _BARE.fullmatch(text):
            seconds = float(text)
        elif _COMPOUND.fullmatch(text):
            seconds = _sum_parts(text, value)
        else:
            raise _expected(value)
    else:
        raise _expected(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise _expected(value)
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {describe(value)}")
    return seconds


def _sum_parts(text: str, original: str) -> float:
    """Add up `1h30m`-style parts; units must go from largest to smallest, once each."""
    total = 0.0
    last_size = math.inf
    for number, unit in _PART.findall(text):
        size = UNITS[unit]
        if size >= last_size:
            raise _expected(original)
        last_size = size
        total += float(number) * size
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of `seconds` (for error messages): 90 -> `90s`."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


class Shape:
    """Stands in for a list/mapping where a scalar was expected, so validators can
    reject it with the same code path and wording as any other wrong value."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


def describe(value: Any, limit: int = 60) -> str:
    """Render a YAML value for an error message in YAML words, not Python type names."""
    if isinstance(value, Shape):
        return value.description
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "an unsupported value"
