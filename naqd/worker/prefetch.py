"""When a worker holds jobs beyond its slots (docs/configuration.md, "prefetch"). Pure.

Prefetch saves the pull round trip between one job's end and the next one's start. That
matters for short jobs only: for a job of 20 ms a round trip is a few percent of its
slot's time, and for long jobs it is nothing, while every held job is one another idle
process cannot start (Celery's long-task problem). So the default prefetch applies only
while this process sees its queue's jobs end quickly: the average run, estimated from
how often slots free up, is under SHORT_JOB. An explicit `prefetch` always applies.
"""

from __future__ import annotations

from dataclasses import dataclass

SHORT_JOB = 0.02  # seconds: jobs shorter than this on average are prefetched by default
ALPHA = 0.1  # weight of each new sample in the moving average


@dataclass
class Pace:
    """The average time a job holds its slot, from the intervals between job ends:
    with `busy` slots taken, one job ends every `duration / busy` seconds on average."""

    average: float | None = None  # seconds; None until the first interval
    last_end: float | None = None

    def job_ended(self, now: float, busy: int) -> None:
        """`busy`: the slots that were taken just before this job ended (itself included)."""
        if self.last_end is not None:
            sample = (now - self.last_end) * max(1, busy)
            self.average = sample if self.average is None else (
                ALPHA * sample + (1 - ALPHA) * self.average
            )  # fmt: skip
        self.last_end = now

    @property
    def short(self) -> bool:
        return self.average is not None and self.average < SHORT_JOB


def held_jobs(prefetch: int, explicit: bool, pace: Pace) -> int:
    """How many jobs to hold beyond the slots now: an explicit setting always; the
    default only while jobs are short."""
    if explicit or pace.short:
        return prefetch
    return 0
