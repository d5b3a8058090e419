# ruff: noqa: E501 - exact error lines read best unwrapped
"""The job-control queue keys: max_in_flight, rate, priorities."""

from __future__ import annotations

import pytest

from tests.unit.test_config import errors, parse


def test_job_control_keys_parse() -> None:
    q = parse(
        "queues:\n  default: {max_in_flight: 3, rate: 1000/m, priorities: [high, default, 1]}\n"
    ).queues["default"]
    assert (q.max_in_flight, q.priorities) == (3, ("high", "default", "1"))
    assert q.rate == pytest.approx(1000 / 60)
    plain = parse("queues: {default: {}}\n").queues["default"]
    assert (plain.max_in_flight, plain.rate, plain.priorities) == (None, None, ())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "queues: {q: {max_in_flight: 0}}\n",
            "naq.yaml:1:29: queues.q.max_in_flight: expected a positive integer, got 0",
        ),
        (
            "queues: {q: {rate: 20}}\n",
            "naq.yaml:1:20: queues.q.rate: expected a rate like 100/s, 1000/m or 3600/h, got 20",
        ),
        (
            "queues: {q: {rate: 0/s}}\n",
            'naq.yaml:1:20: queues.q.rate: a rate must be greater than 0, got "0/s"',
        ),
        (
            "queues: {q: {priorities: [high, low]}}\n",
            'naq.yaml:1:26: queues.q.priorities: the levels must include "default" (jobs enqueued without a priority), e.g. [high, default]',
        ),
        (
            "queues: {q: {priorities: [a, a, default]}}\n",
            'naq.yaml:1:26: queues.q.priorities: priority level "a" is listed twice',
        ),
    ],
)
def test_job_control_key_errors(text: str, expected: str) -> None:
    assert errors(text) == [expected]
