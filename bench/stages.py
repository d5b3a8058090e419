"""`python -m bench.stages`: naqd's own CPU per job (bench/overhead.py) split by stage.

The job path's functions are wrapped with timers that charge the time to the innermost
stage running (exclusive time; a coroutine is timed only while it runs, not while it
waits), what no stage claims is bookkeeping (the runner's glue, records, the job's
asyncio Task and the loop). The wrappers cost time themselves, so the shares measured
with them are scaled to the unwrapped figure of the same run. Plain functions of a sync
job run in pool threads: their CPU (process minus loop thread) is counted under run.
A profiling aid like bench.overhead, never a test.

    python -m bench.stages            # per stage, us/job, the 4 kinds of job
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import uvloop

from bench import overhead

STAGES = (
    "decode",
    "admission",
    "start (Task, slots)",
    "log context",
    "job control",
    "run",
    "result encode",
    "store",
    "notify",
    "ack",
    "metrics",
    "bookkeeping",
)
BASE = "bookkeeping"

# (module, attribute path, stage): what is charged to which stage. Missing names are
# skipped, so the same table measures older and newer versions of the runner.
WRAP = (
    ("naqd.worker.admission", "decode_job", "decode"),
    ("naqd.worker.runner", "admit", "admission"),
    ("naqd.worker.runner", "_num_delivered", "admission"),
    ("naqd.worker.runner", "Runner._policy", "admission"),
    ("naqd.worker.runner", "before_run", "admission"),
    ("naqd.worker.runner", "attempt_of", "admission"),
    ("naqd.worker.runner", "Runner.deliver", "start (Task, slots)"),
    ("naqd.worker.runner", "Runner._start", "start (Task, slots)"),
    ("naqd.worker.runner", "log_job", "log context"),
    ("naqd.worker.runner", "end_log_job", "log context"),
    ("loguru._logger", "Logger.contextualize", "log context"),
    ("contextlib", "_GeneratorContextManager.__enter__", "log context"),
    ("contextlib", "_GeneratorContextManager.__exit__", "log context"),
    ("naqd.worker.cancels", "CancelWatch.begin", "job control"),
    ("naqd.worker.cancels", "CancelWatch.end", "job control"),
    ("naqd.worker.runner", "progress_publisher", "job control"),
    ("naqd.worker.runner", "RunningNotice.__init__", "job control"),
    ("naqd.worker.runner", "RunningNotice.settle", "job control"),
    ("naqd.worker.notice", "RunningNotices.add", "job control"),
    ("naqd.worker.notice", "RunningNotices.settle", "job control"),
    ("naqd.worker.runner", "current_job", "job control"),
    ("naqd.worker.runner", "Runner._call", "run"),
    ("naqd.worker.timeouts", "ThreadRunner._complete", "run"),
    ("naqd.worker.settle", "Settler.encode", "result encode"),
    ("naqd.worker.settle", "encode_result", "result encode"),
    ("naqd.worker.runner", "succeeded_data", "result encode"),
    ("naqd.worker.outcome", "succeeded_data", "result encode"),  # called by decide()
    ("naqd.worker.settle", "reliable_publish", "store"),
    ("naqd.worker.settle", "Settler.store", "store"),
    ("naqd.worker.settle", "Settler._store", "store"),
    ("naqd.transport.streamwriter", "StreamWriter.submit", "store"),
    ("naqd.transport.streamwriter", "StreamWriter._on_ack", "store"),
    ("naqd.transport.streamwriter", "StreamWriter._on_ack_cb", "store"),
    ("nats.aio.msg", "Msg.ack", "ack"),
    ("naqd.observe.metrics", "JobObserver.started", "metrics"),
    ("naqd.observe.metrics", "JobObserver.ended", "metrics"),
    ("naqd.observe.metrics", "JobObserver.flush", "metrics"),
)


_now = time.thread_time  # CPU of the loop thread: waiting in the loop costs nothing


class _Clock:
    """The stage running now; time since the last switch goes to it."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()  # wrapped calls into a stage
        self.outer: Counter[str] = Counter()  # wrapped calls made while in a stage
        self.stack: list[str] = []
        self.stage = BASE
        self.since = _now()

    def enter(self, stage: str) -> None:
        now = _now()
        self.spent[self.stage] += now - self.since
        self.calls[stage] += 1
        self.outer[self.stage] += 1
        self.stack.append(self.stage)
        self.stage, self.since = stage, now

    def leave(self) -> None:
        now = _now()
        self.spent[self.stage] += now - self.since
        self.stage, self.since = self.stack.pop(), now


CLOCK = _Clock()


class _Yield:
    """Hand what the wrapped coroutine yielded (a future) to the task, and back."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __await__(self) -> Any:
        return (yield self.obj)


def _timed(fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
    if asyncio.iscoroutinefunction(fn):

        async def co(*args: Any, **kwargs: Any) -> Any:
            coro = fn(*args, **kwargs)
            value: Any = None
            error: BaseException | None = None
            while True:
                CLOCK.enter(stage)
                try:
                    out = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    return stop.value
                finally:
                    CLOCK.leave()
                try:
                    value, error = await _Yield(out), None
                except BaseException as exc:
                    value, error = None, exc

        return co

    def plain(*args: Any, **kwargs: Any) -> Any:
        CLOCK.enter(stage)
        try:
            return fn(*args, **kwargs)
        finally:
            CLOCK.leave()

    return plain


def _publish_stage(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The harness connection's publish: a write's cost belongs to whoever calls it; one
    made by the runner's own code (no stage) is the done notice."""
    timed = _timed(fn, "notify")

    async def publish(*args: Any, **kwargs: Any) -> Any:
        if CLOCK.stage == BASE:
            return await timed(*args, **kwargs)
        return await fn(*args, **kwargs)

    return publish


def install() -> None:
    for module, path, stage in WRAP:
        owner: Any = importlib.import_module(module)
        *parents, name = path.split(".")
        try:
            for part in parents:
                owner = getattr(owner, part)
            fn = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        except (AttributeError, KeyError):
            continue
        setattr(owner, name, _timed(fn, stage))
    nats_cls = overhead.FakeNats
    nats_cls.publish = _publish_stage(nats_cls.publish)  # type: ignore[method-assign]


def _run(task: str, ttl: float | None, concurrency: int, n: int) -> float:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        us, _ = runner.run(overhead.per_job_us(task, ttl, False, concurrency, n))
    return us


def calibrate(k: int = 200_000) -> tuple[float, float]:
    """Seconds a timer wrapper adds per call inside the wrapped stage and in the caller's
    (subtracted from the figures before they are scaled)."""

    def noop() -> None:
        return None

    timed = _timed(noop, "calibration")
    t0 = _now()
    for _ in range(k):
        noop()
    bare = _now() - t0
    CLOCK.spent.clear()
    CLOCK.since = t0 = _now()
    for _ in range(k):
        timed()
    spent = _now() - t0
    inside = CLOCK.spent["calibration"] / k
    return inside, max(0.0, (spent - bare) / k - inside)


def wrapped_stages(task: str, ttl: float | None, concurrency: int, n: int) -> dict[str, float]:
    """us per job by stage with the timers on (install() first); `total` their sum."""
    inside, outside = calibrate()
    CLOCK.spent.clear()
    CLOCK.calls.clear()
    CLOCK.outer.clear()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop_cpu0 = time.thread_time()
        CLOCK.since = _now()
        wrapped, _ = runner.run(overhead.per_job_us(task, ttl, False, concurrency, n))
        loop_cpu = time.thread_time() - loop_cpu0
    stages = {
        s: max(0.0, CLOCK.spent[s] - CLOCK.calls[s] * inside - CLOCK.outer[s] * outside) / n * 1e6
        for s in STAGES
    }
    stages["run"] += max(0.0, wrapped - loop_cpu / n * 1e6)  # pool threads (sync jobs)
    # The loop thread's CPU outside the clock's window (the harness before the first
    # job) is small; what the stages do not claim there is bookkeeping, as is the rest.
    stages["total"] = sum(stages.values())
    return stages


def main() -> None:
    n = 30_000
    print(f"naqd's own CPU per job by stage ({n:,} jobs, no NATS), us\n")
    cols = [(label, task, ttl, c) for label, task, ttl in overhead.KINDS for c in (256, 10)]
    plain = [_run(task, ttl, c, n) for _, task, ttl, c in cols]  # before any wrapper
    install()
    results = []
    for (_, task, ttl, c), total in zip(cols, plain, strict=True):
        stages = wrapped_stages(task, ttl, c, n)
        scale = total / stages["total"]
        results.append({k: v * scale for k, v in stages.items()})
    heads = [f"{label.replace('no-op, ', '')}, c{c}" for label, _, _, c in cols]
    print("| stage | " + " | ".join(heads) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for stage in (*STAGES, "total"):
        print(f"| {stage} | " + " | ".join(f"{r[stage]:.1f}" for r in results) + " |")


if __name__ == "__main__":
    main()
