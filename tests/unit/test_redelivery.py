"""Which redeliveries the worker logs as lost attempts (worker/redelivery.py)."""

from __future__ import annotations

import pytest

from naqd.protocol.envelope import ResultRecord
from naqd.worker.redelivery import redelivery_cause


def rec(status: str) -> ResultRecord:
    return ResultRecord(id="j", status=status, attempts=1, worker="h:1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prior", "delivered", "store", "cause"),
    [
        (None, 1, True, None),  # first delivery
        (rec("running"), 1, True, None),
        (rec("running"), 2, True, "lost"),  # the worker died mid-run
        # No record: it died within 50 ms (before the 'running' notice) or was held in a
        # prefetch backlog and handed back at a stop: nothing tells which.
        (None, 2, True, "unknown"),
        (rec("retrying"), 2, True, None),  # our own delayed nak
        (rec("queued"), 3, True, None),  # handed back at a drain
        (None, 2, False, "unknown"),  # result_ttl=0: nothing to tell by
    ],
)
def test_redelivery_cause(prior, delivered: int, store: bool, cause: str | None) -> None:
    assert redelivery_cause(prior, delivered, store) == cause
