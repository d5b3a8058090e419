"""Telling a redelivery after a lost worker from naqd's own retries, for the log.

NATS counts deliveries (`num_delivered` in the ack reply), not why they happened. A retry
of ours writes a `retrying` record before its delayed nak, and a drain at shutdown resets
the record to `queued`; so a second delivery that finds the record `running` comes from
an attempt that ended without any outcome: its worker died, hung past `ack_wait`, or lost
its connection. No record at all tells nothing: the 'running' record is written only
once a job has run for 50 ms (worker/notice.py), and a job held in a prefetch backlog and
handed back at a stop, a pause or a recycle never started (logged at INFO, not WARNING)."""

from __future__ import annotations

from typing import Literal

from loguru import logger

from naqd.protocol.envelope import ResultRecord

Cause = Literal["lost", "unknown"]


def redelivery_cause(prior: ResultRecord | None, delivered: int, store: bool) -> Cause | None:
    """None for a first delivery or one naqd itself asked for (a retry, a hand-back)."""
    if delivered <= 1:
        return None
    if not store or prior is None:
        return "unknown"  # no record to tell a retry, a hand-back or a loss apart
    if prior.status == "running":
        return "lost"
    return None


def log_redelivery(
    job_id: str, task: str, prior: ResultRecord | None, delivered: int, store: bool
) -> None:
    cause = redelivery_cause(prior, delivered, store)
    if cause == "lost":
        where = f" on {prior.worker}" if prior is not None and prior.worker else ""
        logger.warning(
            "job {} {} redelivered (delivery {}): the previous attempt{} ended without an "
            "outcome (its worker died, hung past ack_wait or lost NATS)",
            job_id,
            task,
            delivered,
            where,
        )
    elif cause == "unknown":
        logger.info("job {} {} delivered again (delivery {})", job_id, task, delivered)
