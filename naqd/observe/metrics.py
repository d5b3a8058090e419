"""Metric definitions (docs/metrics.md) and the multiprocess directory they live in.

Children write their values to mmap files in PROMETHEUS_MULTIPROC_DIR (prometheus_client
multiprocess mode); the supervisor owns the directory, wipes it at boot, marks reaped
children dead and merges everything at scrape time. Metric objects are created on first
use, in the child, so importing this module never creates value files (the supervisor
imports worker code for its entry points but must not write samples of its own).
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; jobs range from milliseconds to an hour.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    21600.0, 86400.0,
)  # fmt: skip


class MultiprocDir:
    """The directory of metric files: $PROMETHEUS_MULTIPROC_DIR (systemd's RuntimeDirectory)
    or a private temporary one. Stale `*.db` files of an earlier run are removed, since
    counters of dead pids would otherwise be added to this run's."""

    def __init__(self, env: dict[str, str] | os._Environ[str] = os.environ) -> None:
        given = env.get(ENV_DIR)
        self.owned = not given
        self.path = Path(given) if given else Path(tempfile.mkdtemp(prefix="naqd-metrics-"))

    def prepare(self) -> Path:
        """Create and wipe the directory, and export it to the children we spawn."""
        self.path.mkdir(parents=True, exist_ok=True)
        for db in self.path.glob("*.db"):
            db.unlink(missing_ok=True)
        os.environ[ENV_DIR] = str(self.path)
        return self.path

    def mark_dead(self, pid: int) -> None:
        """Drop a reaped child's live gauges and fold its counters into the archive files,
        so totals never go back and dead pids leave no files (metricfiles.py)."""
        from naqd.observe.metricfiles import fold_dead

        fold_dead(self.path, pid)

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


@dataclass(frozen=True)
class Metrics:
    started: Any
    succeeded: Any
    failed: Any
    retried: Any
    dead_lettered: Any
    duration: Any
    queue_wait: Any
    running: Any
    queue_pending: Any
    queue_in_flight: Any
    queue_paused: Any
    queue_lag: Any
    dead_letters: Any
    schedule_fires: Any
    schedule_last_fire: Any
    scheduler_is_leader: Any


@functools.cache
def metrics() -> Metrics:
    """The child-side metrics, created once per process on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    job = ("queue", "task")
    return Metrics(
        started=Counter("naqd_jobs_started", "Job attempts started", job),
        succeeded=Counter("naqd_jobs_succeeded", "Jobs that returned a result", job),
        failed=Counter("naqd_jobs_failed", "Jobs that failed for good (no retry left)", job),
        retried=Counter("naqd_jobs_retried", "Failed attempts scheduled for a retry", job),
        dead_lettered=Counter(
            "naqd_jobs_dead_lettered", "Jobs moved to the dead-letter stream", job
        ),
        duration=Histogram(
            "naqd_job_duration_seconds",
            "Run time of a job attempt, start to outcome",
            job,
            buckets=DURATION_BUCKETS,
        ),
        queue_wait=Histogram(
            "naqd_job_queue_wait_seconds",
            "Enqueue to start of an attempt (includes retry delays)",
            job,
            buckets=WAIT_BUCKETS,
        ),
        running=Gauge(
            "naqd_jobs_running", "Jobs running now", ("queue",), multiprocess_mode="livesum"
        ),
        queue_pending=Gauge(
            "naqd_queue_pending",
            "Jobs waiting in the queue (consumer num_pending)",
            ("queue",),
            multiprocess_mode="livemostrecent",
        ),
        queue_in_flight=Gauge(
            "naqd_queue_in_flight",
            "Jobs delivered and not yet acked, cluster-wide (consumer num_ack_pending)",
            ("queue",),
            multiprocess_mode="livemostrecent",
        ),
        queue_paused=Gauge(
            "naqd_queue_paused",
            "1 while the queue is paused (its consumers are), else 0",
            ("queue",),
            multiprocess_mode="livemostrecent",
        ),
        queue_lag=Gauge(
            "naqd_queue_lag_seconds",
            "Age of the oldest job waiting for its first delivery (0 when none waits)",
            ("queue",),
            multiprocess_mode="livemostrecent",
        ),
        dead_letters=Gauge(
            "naqd_dead_letters",
            "Entries of the queue in the dead-letter stream, cluster-wide",
            ("queue",),
            multiprocess_mode="livemostrecent",
        ),
        schedule_fires=Counter(
            "naqd_schedule_fires", "Jobs fired by a schedule on this host", ("schedule",)
        ),
        schedule_last_fire=Gauge(
            "naqd_schedule_last_fire_timestamp_seconds",
            "Unix time of a schedule's last fire from this host",
            ("schedule",),
            multiprocess_mode="mostrecent",
        ),
        scheduler_is_leader=Gauge(
            "naqd_scheduler_is_leader",
            "1 while this host's scheduler holds the leader lease",
            multiprocess_mode="livemax",
        ),
    )


UNKNOWN_TASK = "<unknown>"  # the one `task` label of every name that does not resolve
FLUSH_EVERY = 1.0  # seconds: a job's counts reach /metrics at most this late


class _Batch:
    """One histogram child's observations since the last flush."""

    __slots__ = ("child", "values")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.values: list[float] = []

    def flush(self) -> None:
        values, self.values = self.values, []
        if values:
            add_observations(self.child, values)


def add_observations(child: Any, values: list[float]) -> None:
    """Many observations in one write per touched bucket: in multiprocess mode each
    write is an mmap update under a lock, which cost ~20 us a job when done per job.
    Uses the histogram's bucket values (stable in prometheus_client for years); falls
    back to observe() if they ever change shape."""
    buckets = getattr(child, "_buckets", None)
    bounds = getattr(child, "_upper_bounds", None)
    total = getattr(child, "_sum", None)
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for v in values:
            child.observe(v)
        return
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)
    total.inc(sum(values))


class _TaskSeries:
    """A task's labelled children, looked up once (`labels()` costs more than `inc()`),
    and what this process counted for them since the last flush."""

    def __init__(self, m: Metrics, queue: str, task: str) -> None:
        self.started = m.started.labels(queue, task)
        self.queue_wait = _Batch(m.queue_wait.labels(queue, task))
        self.duration = _Batch(m.duration.labels(queue, task))
        self.outcomes = {
            "succeeded": m.succeeded.labels(queue, task),
            "failed": m.failed.labels(queue, task),
            "retried": m.retried.labels(queue, task),
        }
        self.n_started = 0
        self.n_outcomes = dict.fromkeys(self.outcomes, 0)

    def flush(self) -> None:
        if self.n_started:
            self.started.inc(self.n_started)
            self.n_started = 0
        for outcome, n in self.n_outcomes.items():
            if n:
                self.outcomes[outcome].inc(n)
                self.n_outcomes[outcome] = 0
        self.queue_wait.flush()
        self.duration.flush()


class JobObserver:
    """What one worker process knows about its jobs: metrics, plus the ids running now and
    the done/failed counts its KV heartbeat reports. The runner calls started/ended.

    Counts are kept in plain attributes and written to the metric files at most once per
    FLUSH_EVERY (a timer armed by the first event after a flush), so /metrics lags by up
    to a second and the per-job cost is a few dictionary updates."""

    def __init__(self, queue: str, known: Callable[[str], bool] | None = None) -> None:
        self.queue = queue
        # Whether a task name resolves: an unresolvable name (a typo in an allowed module)
        # is counted under UNKNOWN_TASK, so made-up names cannot create series without end.
        self._known = known
        self._labels: dict[str, str] = {}
        self.running: dict[str, float] = {}  # job id -> started (unix time)
        self.done = 0
        self.failed = 0
        self._series: dict[str, _TaskSeries] = {}
        self._running_gauge: Any = None
        self._running_delta = 0
        self._flush_armed = False
        self._last_task: str | None = None  # the task of the last event, and its series
        self._last_series: _TaskSeries | None = None

    def label(self, task: str) -> str:
        """The `task` label value: the name when it resolves, else UNKNOWN_TASK."""
        label = self._labels.get(task)
        if label is None:
            label = task if self._known is None or self._known(task) else UNKNOWN_TASK
            if label != UNKNOWN_TASK:  # only real tasks are kept: their number is bounded
                self._labels[task] = label
        return label

    def _for(self, task: str) -> _TaskSeries:
        last = self._last_series
        if task == self._last_task and self._flush_armed and last is not None:
            return last  # a worker runs a few tasks
        series = self._lookup(task)
        self._last_task, self._last_series = task, series
        return series

    def _lookup(self, task: str) -> _TaskSeries:
        task = self.label(task)
        series = self._series.get(task)
        if series is None:
            series = self._series[task] = _TaskSeries(metrics(), self.queue, task)
            self._running_gauge = metrics().running.labels(self.queue)
        if not self._flush_armed:
            self._arm()
        return series

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): write through
            self._flush_armed = False
            return
        self._flush_armed = True
        loop.call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Write what was counted since the last flush to the metric values."""
        self._flush_armed = False
        if self._running_delta and self._running_gauge is not None:
            self._running_gauge.inc(self._running_delta)
            self._running_delta = 0
        for series in self._series.values():
            series.flush()

    def started(self, job_id: str, task: str, enqueued_at: float) -> float:
        now = time.time()
        series = self._for(task)
        series.n_started += 1
        if enqueued_at > 0:
            series.queue_wait.values.append(max(0.0, now - enqueued_at))
        self._running_delta += 1
        self.running[job_id] = now
        if not self._flush_armed:
            self.flush()
        return now

    def ended(self, job_id: str, task: str, outcome: str) -> None:
        """outcome: succeeded | failed (for good) | retried | cancelled."""
        started = self.running.pop(job_id, None)
        series = self._for(task)
        self._running_delta -= 1
        if started is not None:
            series.duration.values.append(max(0.0, time.time() - started))
        if outcome in series.n_outcomes:  # "cancelled" has no counter of its own
            series.n_outcomes[outcome] += 1
        if outcome == "succeeded":
            self.done += 1
        elif outcome == "failed":
            self.failed += 1
        if not self._flush_armed:
            self.flush()

    def dead_lettered(self, task: str) -> None:
        """A job of this queue went to the dead-letter stream (called by that path)."""
        metrics().dead_lettered.labels(self.queue, self.label(task)).inc()


@functools.cache
def recycle_counter() -> Any:
    """naqd_worker_recycles_total{queue,reason}: counted by the recycling worker itself (it
    alone knows why); its file outlives it through the archive (metricfiles.py)."""
    from prometheus_client import Counter

    return Counter(
        "naqd_worker_recycles",
        "Worker processes that handed over to a fresh one (reason: max_jobs, max_memory, "
        "stuck_thread)",
        ("queue", "reason"),
    )


@functools.cache
def consumer_repairs() -> Any:
    """naqd_consumers_repaired_total{consumer}: consumers recreated at a child's start
    because their position lay past their stream's end (after a power cut)."""
    from prometheus_client import Counter

    return Counter(
        "naqd_consumers_repaired",
        "Consumers recreated at startup because their position was past the end of their "
        "stream (a power cut kept the consumer's state and lost stream data)",
        ("consumer",),
    )


def count_repair(consumer: str, why: str) -> None:
    consumer_repairs().labels(consumer).inc()


@functools.cache
def middleware_errors() -> Any:
    """naqd_middleware_errors_total{hook}: middleware hooks that raised (and were ignored:
    the job went on, docs/extending.md)."""
    from prometheus_client import Counter

    return Counter(
        "naqd_middleware_errors",
        "Middleware hooks that raised; the job's outcome was not changed",
        ("hook",),
    )
