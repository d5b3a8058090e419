"""Prefetch settings (how many jobs a process holds beyond its slots) and reading the
server's pause advisories: pure logic."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from naqd.config import ConfigError, QueueConfig, parse_config
from naqd.models import PREFETCH_MAX, PREFETCH_PER_SLOT
from naqd.worker.pausewatch import paused_from
from naqd.worker.prefetch import Pace, held_jobs


@pytest.mark.parametrize(
    ("queue", "held"),
    [
        (QueueConfig(name="q", concurrency=10), PREFETCH_PER_SLOT * 10),
        (QueueConfig(name="q", concurrency=10, prefetch=0), 0),
        (QueueConfig(name="q", concurrency=10, prefetch=25), 25),
        # Priorities: a held job would run before a higher level's newer one.
        (QueueConfig(name="q", priorities=("high", "default")), 0),
        # max_in_flight: held jobs would take the cluster's budget from idle processes.
        (QueueConfig(name="q", max_in_flight=5), 0),
        (QueueConfig(name="q", max_in_flight=5, prefetch=3), 3),  # asked for: honoured
        (QueueConfig(name="q", priorities=("default",)), PREFETCH_PER_SLOT * 16),  # one level
        (QueueConfig(name="q", concurrency=256), PREFETCH_MAX),
    ],
)
def test_prefetch_jobs(queue: QueueConfig, held: int) -> None:
    assert queue.prefetch_jobs == held


def test_prefetch_parses() -> None:
    config = parse_config("queues: {a: {prefetch: 40}, b: {prefetch: 0}}", env={})
    assert config.queues["a"].prefetch == 40 and config.queues["b"].prefetch_jobs == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "queues: {a: {prefetch: -1}}",
            "naq.yaml:1:24: queues.a.prefetch: expected an integer of 0 or more, got -1",
        ),
        (
            "queues: {a: {priorities: [high, default], prefetch: 4}}",
            "naq.yaml:1:53: queues.a.prefetch: a queue with priorities cannot prefetch: a "
            "held job would run before a higher level's newer one (set prefetch: 0, or drop "
            "priorities)",
        ),
    ],
)
def test_prefetch_errors(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "naq.yaml", env={})
    assert [str(i) for i in info.value.issues] == [expected]


def test_prefetch_zero_with_priorities_is_fine() -> None:
    parse_config("queues: {a: {priorities: [high, default], prefetch: 0}}", env={})


NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def advisory(**fields: object) -> bytes:
    return json.dumps({"type": "io.nats.jetstream.advisory.v1.consumer_pause", **fields}).encode()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            advisory(paused=True, pause_until="2099-01-01T00:00:00Z"),
            (True, pytest.approx((datetime(2099, 1, 1, tzinfo=UTC) - NOW).total_seconds())),
        ),
        (
            advisory(paused=True, pause_until=(NOW + timedelta(seconds=30)).isoformat()),
            (True, 30.0),
        ),
        (advisory(paused=True, pause_until="2020-01-01T00:00:00Z"), (False, None)),  # over
        (advisory(paused=True), (True, None)),
        (advisory(paused=False, pause_until="1970-01-01T00:00:00Z"), (False, None)),
        (b"not json", (False, None)),
        (b"[1, 2]", (False, None)),
    ],
)
def test_paused_from_an_advisory(payload: bytes, expected: tuple[bool, float | None]) -> None:
    assert paused_from(payload, NOW) == expected


def paced(ends: list[float], busy: int) -> Pace:
    pace = Pace()
    for t in ends:
        pace.job_ended(t, busy)
    return pace


@pytest.mark.parametrize(
    ("ends", "busy", "average", "short"),
    [
        ([], 10, None, False),  # nothing seen yet: no default prefetch
        ([0.0], 10, None, False),
        # 10 slots busy, a job ends every 1 ms: each job holds its slot ~10 ms.
        ([i * 0.001 for i in range(50)], 10, 0.01, True),
        # One job ends every 10 ms with 10 busy: ~100 ms a job.
        ([i * 0.01 for i in range(50)], 10, 0.1, False),
        # A lone job every 5 s (an idle queue): long, nothing worth holding.
        ([0.0, 5.0, 10.0], 1, 5.0, False),
    ],
)
def test_pace_estimates_how_long_a_job_holds_its_slot(ends, busy, average, short) -> None:
    pace = paced(ends, busy)
    assert (pace.average is None) == (average is None)
    if average is not None:
        assert pace.average == pytest.approx(average, rel=0.05)
    assert pace.short is short


def test_pace_follows_jobs_that_get_longer() -> None:
    pace = paced([i * 0.001 for i in range(50)], 10)
    assert pace.short
    for i in range(1, 40):
        pace.job_ended(0.049 + i * 0.05, 10)  # now 500 ms a job
    assert not pace.short


@pytest.mark.parametrize(
    ("explicit", "short", "held"),
    [(True, False, 30), (True, True, 30), (False, True, 30), (False, False, 0)],
)
def test_held_jobs(explicit: bool, short: bool, held: int) -> None:
    pace = paced([i * 0.001 for i in range(50)], 10) if short else Pace()
    assert held_jobs(30, explicit, pace) == held
