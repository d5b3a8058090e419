"""Retry policy: pure functions of the attempt number, the exception and the settings
(queue YAML, overridden per job by the envelope)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from naqd.models import BackoffConfig, QueueConfig


@dataclass(frozen=True)
class RetryPolicy:
    retries: int
    backoff: BackoffConfig
    retry_on: tuple[str, ...] = ()
    dont_retry_on: tuple[str, ...] = ()

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def retryable(self, exc: BaseException) -> bool:
        """dont_retry_on wins; an empty retry_on means every exception is retried."""
        cls = type(exc)
        if matches(cls, self.dont_retry_on):
            return False
        return not self.retry_on or matches(cls, self.retry_on)

    def delay(self, attempt: int, rand: float | None = None) -> float:
        return backoff_delay(attempt, self.backoff, random.random() if rand is None else rand)


def backoff_delay(attempt: int, backoff: BackoffConfig, rand: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based); `rand` in [0, 1) takes up
    to `jitter` of the delay off, so retries of jobs that failed together spread out."""
    attempt = max(1, attempt)
    if backoff.delays:
        return backoff.delays[min(attempt, len(backoff.delays)) - 1]
    if backoff.strategy == "exponential":
        # 2**n overflows a float near n=1024; the cap is reached long before.
        raw = backoff.base * 2.0 ** min(attempt - 1, 64)
    elif backoff.strategy == "linear":
        raw = backoff.base * attempt
    else:
        raw = backoff.base
    return min(backoff.max, raw) * (1.0 - backoff.jitter * rand)


def matches(cls: type, names: Iterable[str]) -> bool:
    """Whether `cls` or a base class is named by one of `names` (bare or dotted)."""
    wanted = set(names)
    if not wanted:
        return False
    for base in cls.__mro__:
        if base.__name__ in wanted or f"{base.__module__}.{base.__qualname__}" in wanted:
            return True
    return False


def policy_for(queue: QueueConfig, job: JobOptions | None = None) -> RetryPolicy:
    """The queue's policy with the job's own settings (from the envelope) on top."""
    job = job or JobOptions()
    return RetryPolicy(
        retries=queue.retries if job.retries is None else job.retries,
        backoff=queue.backoff if job.backoff is None else job.backoff,
        retry_on=queue.retry_on if job.retry_on is None else job.retry_on,
        dont_retry_on=queue.dont_retry_on if job.dont_retry_on is None else job.dont_retry_on,
    )


@dataclass(frozen=True)
class JobOptions:
    retries: int | None = None
    backoff: BackoffConfig | None = None
    retry_on: tuple[str, ...] | None = None
    dont_retry_on: tuple[str, ...] | None = None


def backoff_from_wire(raw: Any) -> BackoffConfig:
    """A per-job backoff as the envelope carries it (already checked by the protocol)."""
    if isinstance(raw, list | tuple):
        return BackoffConfig(delays=tuple(float(d) for d in raw))
    d = BackoffConfig()
    return BackoffConfig(
        strategy=raw.get("strategy", d.strategy),
        base=float(raw.get("base", d.base)),
        max=float(raw.get("max", d.max)),
        jitter=float(raw.get("jitter", d.jitter)),
    )
