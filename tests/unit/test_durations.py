from __future__ import annotations

import pytest

from naqd.values import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1.5s", 1.5),
        ("1h30m", 5400.0),
        ("1h 30m 10s", 5410.0),
        ("30 s", 30.0),
        ("0s", 0.0),
        ("  45s ", 45.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (30, 30.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_parse_duration_accepts(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5s", 'a duration cannot be negative, got "-5s"'),
        (-1, "a duration cannot be negative, got -1"),
        (-0.5, "a duration cannot be negative, got -0.5"),
        ("soon", 'expected a duration like 30s, 5m, 2h, got "soon"'),
        ("", 'expected a duration like 30s, 5m, 2h, got ""'),
        ("5 minutes", 'expected a duration like 30s, 5m, 2h, got "5 minutes"'),
        ("5M", 'expected a duration like 30s, 5m, 2h, got "5M"'),
        ("30m1h", 'expected a duration like 30s, 5m, 2h, got "30m1h"'),
        ("1s1s", 'expected a duration like 30s, 5m, 2h, got "1s1s"'),
        ("s", 'expected a duration like 30s, 5m, 2h, got "s"'),
        (True, "expected a duration like 30s, 5m, 2h, got true"),
        (None, "expected a duration like 30s, 5m, 2h, got an empty value"),
        (float("inf"), "expected a duration like 30s, 5m, 2h, got inf"),
        (float("nan"), "expected a duration like 30s, 5m, 2h, got nan"),
        ([1], "expected a duration like 30s, 5m, 2h, got a list"),
    ],
)
def test_parse_duration_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (1, "1s"), (90, "90s"), (300, "5m"), (7200, "2h"), (86400, "1d")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
