"""When a worker process should hand over to a fresh one: after a number of jobs (with
jitter, so processes started together do not all recycle together) or above a memory
limit. Pure, except for reading this process's RSS."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from naqd.config import PoolConfig, QueueConfig


@dataclass(frozen=True)
class RecycleLimits:
    max_jobs: int = 0  # 0: no limit
    max_rss: int = 0  # bytes; 0: no limit

    @classmethod
    def for_queue(cls, queue: QueueConfig | PoolConfig, rand: float) -> RecycleLimits:
        """`rand` in [0, 1) picks this process's share of the jitter."""
        max_jobs = queue.max_jobs_per_process
        if max_jobs:
            jitter = queue.max_jobs_jitter
            if jitter is None:
                jitter = max_jobs // 10
            max_jobs += int(rand * (jitter + 1))
        return cls(max_jobs=max_jobs, max_rss=queue.max_memory_per_process)

    @classmethod
    def for_pool(cls, pool: PoolConfig, rand: float) -> RecycleLimits:
        """A pooled process's limits: the pool's, counted over the jobs of all its queues."""
        return cls.for_queue(pool, rand)

    def exceeded(self, jobs: int, rss: Callable[[], int]) -> str:
        """Why this process should recycle now, or "" (rss is only read when limited)."""
        if self.max_jobs and jobs >= self.max_jobs:
            return f"ran {jobs} jobs (max_jobs_per_process)"
        if self.max_rss:
            used = rss()
            if used >= self.max_rss:
                mib = used / 2**20
                return f"resident memory {mib:.0f} MiB (max_memory_per_process)"
        return ""


def recycle_label(reason: str) -> str:
    """The bounded `reason` label of naqd_worker_recycles_total for a recycle's reason."""
    if "max_jobs_per_process" in reason:
        return "max_jobs"
    if "max_memory_per_process" in reason:
        return "max_memory"
    if "thread" in reason:
        return "stuck_thread"
    return "other"


def rss_bytes() -> int:
    """Current resident set size; the peak where /proc is missing (macOS)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


RSS_EVERY = 0.2  # seconds: how old the RSS a recycle decision uses may be


class SampledRss:
    """`rss_bytes()` read at most every `every` seconds: reading /proc costs ~7 us, a third
    of a short job, and the memory limit does not need a fresh figure after every job."""

    def __init__(self, every: float = RSS_EVERY, read: Callable[[], int] = rss_bytes) -> None:
        self.every = every
        self._read = read
        self._value = 0
        self._next = 0.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now >= self._next:
            self._value = self._read()
            self._next = now + self.every
        return self._value
