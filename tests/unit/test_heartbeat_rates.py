"""A heartbeat's done/failed per minute (what the console's overview sums per queue)
and its memory reading."""

from __future__ import annotations

from naqd.models import Config
from naqd.observe.heartbeat import Heartbeat, rss_bytes


def test_rates_are_measured_over_the_last_minute_of_beats() -> None:
    beat = Heartbeat(Config(), "worker", link=None)
    assert beat.rates(0, 0, 1000.0) == (0.0, 0.0)  # one sample: no span yet
    assert beat.rates(30, 3, 1015.0) == (120.0, 12.0)
    assert beat.rates(60, 3, 1030.0) == (120.0, 6.0)
    # Past a minute the oldest samples drop out: an idle minute reads as zero.
    for t in (1045.0, 1060.0, 1075.0, 1090.0, 1105.0):
        rates = beat.rates(60, 3, t)
    assert rates == (0.0, 0.0)


def test_the_record_carries_rates_memory_and_recycles() -> None:
    rec = Heartbeat(Config(), "worker", link=None).record()
    assert rec["done_per_min"] == 0.0 and rec["recycles"] == 0
    assert rss_bytes() is None or rec["memory_rss"] > 1_000_000


def test_rates_are_kept_per_queue_of_a_pool() -> None:
    beat = Heartbeat(Config(), "worker", link=None)
    beat.rates(0, 0, 1000.0, "a")
    beat.rates(0, 0, 1000.0, "b")
    assert beat.rates(10, 0, 1030.0, "a") == (20.0, 0.0)
    assert beat.rates(0, 3, 1030.0, "b") == (0.0, 6.0)
