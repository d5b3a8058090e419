"""Rate parsing and the rate limiter's window plan."""

from __future__ import annotations

import pytest

from naqd.config.checks import rate
from naqd.worker.ratelimit import plan, window_of


@pytest.mark.parametrize(
    ("text", "per_second"), [("20/s", 20.0), ("1000/m", 1000 / 60), ("3600/h", 1.0), ("0.5/s", 0.5)]
)
def test_rate_parses_per_second(text: str, per_second: float) -> None:
    assert rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["fast", "20", "20/d", "0/s", "-1/s", "x/s", 20])
def test_rate_refuses_bad_values(bad: object) -> None:
    with pytest.raises(ValueError, match="rate"):
        rate(bad)


@pytest.mark.parametrize(
    ("per_second", "window", "tokens"),
    [(20.0, 0.1, 2), (1000 / 60, 0.12, 2), (1 / 60, 60.0, 1), (10_000.0, 0.1, 1000)],
)
def test_plan_uses_whole_tokens_in_short_windows(per_second, window, tokens) -> None:
    p = plan(per_second)
    assert p.tokens == tokens and p.window == pytest.approx(window)
    assert p.tokens / p.window == pytest.approx(per_second)


def test_windows_are_the_same_on_every_host() -> None:
    p = plan(20.0)
    assert window_of(1000.0, p) == 10_000 and window_of(1000.099, p) == 10_000
    assert window_of(1000.1, p) == 10_001


def test_priority_rounds_serve_the_lowest_level_first_one_round_in_ten() -> None:
    from naqd.worker.priority import round_order

    orders = [round_order(3, r) for r in range(20)]
    assert orders.count([2, 1, 0]) == 2 and orders.count([0, 1, 2]) == 18
    assert orders[9] == [2, 1, 0] and orders[19] == [2, 1, 0]
