"""Tasks the integration and process tests run inside real workers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def echo_kwargs(**kwargs: object) -> dict[str, object]:
    return kwargs


def count_run(directory: str) -> int:
    """Append a line per execution, so a test can count how often a job ran."""
    path = Path(directory) / "runs"
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return os.getpid()


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def overlap(directory: str, timeout: float = 30.0) -> dict[str, int]:
    """Register as running, then block until the test creates 'release', reporting the
    most jobs this one ever saw running at once."""
    d = Path(directory)
    me = d / f"{os.getpid()}-{time.monotonic_ns()}.running"
    me.touch()
    peak = 0

    def released() -> bool:
        nonlocal peak
        peak = max(peak, len(list(d.glob("*.running"))))
        return (d / "release").exists()

    _wait_for(released, timeout)
    me.unlink()
    return {"pid": os.getpid(), "peak": peak}


def block_until_released(directory: str) -> str:
    """Write a 'started' marker with the pid, then block until a 'release' file exists.
    On a redelivery (a second run) it returns at once."""
    d = Path(directory)
    started = d / "started"
    first_run = not started.exists()
    with started.open("a") as f:
        f.write(f"{os.getpid()}\n")
    if first_run:
        _wait_for(lambda: (d / "release").exists(), 60.0)
    return "released" if first_run else "rerun"


def record(directory: str, n: int, seconds: float = 0.0) -> int:
    """Sleep, then append `n` to this process's runs file: a test counts how often (and
    whether) each job completed. One small O_APPEND write per run is atomic."""
    if seconds:
        with (Path(directory) / f"starts-{os.getpid()}").open("a") as f:
            f.write(f"{n}\n")
        time.sleep(seconds)
    with (Path(directory) / f"runs-{os.getpid()}").open("a") as f:
        f.write(f"{n}\n")
    return n


async def async_record(directory: str, n: int, seconds: float = 0.0) -> int:
    if seconds:
        await asyncio.sleep(seconds)
    with (Path(directory) / f"runs-{os.getpid()}").open("a") as f:
        f.write(f"{n}\n")
    return n


def always_fail(directory: str) -> None:
    """Log the time of each attempt, then fail."""
    with (Path(directory) / "attempts").open("a") as f:
        f.write(f"{time.time()}\n")
    raise RuntimeError("this job always fails")


def sleep_past_timeout(directory: str, seconds: float) -> str:
    """A plain function that ignores its timeout (a thread cannot be interrupted)."""
    with (Path(directory) / "stuck").open("a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return "woke"


def kill_own_worker(directory: str) -> None:
    """A poison pill: the worker process running it dies (like a segfault or OOM kill)."""
    with (Path(directory) / "kills").open("a") as f:
        f.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), 9)


def exit_now() -> None:
    """A task that calls sys.exit: the job fails, the worker stays."""
    import sys

    sys.exit(3)


async def async_exit_now() -> None:
    import sys

    sys.exit(4)


def _marker(directory: str, name: str) -> None:
    (Path(directory) / name).touch()


async def async_wait_forever(directory: str) -> str:
    """Report progress, mark 'started', then wait far longer than any test: only a
    cancel ends it (the 'finally' marker shows the coroutine saw its CancelledError)."""
    import naqd

    naqd.current_job().progress(0.25, "waiting")
    _marker(directory, "started")
    try:
        await asyncio.sleep(120)
    finally:
        _marker(directory, "finally")
    return "not cancelled"


def thread_until_cancelled(directory: str) -> str:
    """A sync job that cooperates: checks the cancel flag while it works."""
    import naqd

    job = naqd.current_job()
    _marker(directory, "started")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job.raise_if_cancelled()
        time.sleep(0.01)
    return "not cancelled"


def progress_until_released(directory: str) -> str:
    """Report progress from a pool thread, then wait for a 'release' file."""
    import naqd

    naqd.current_job().progress(0.4, "resizing")
    _marker(directory, "started")
    _wait_for(lambda: (Path(directory) / "release").exists(), 60.0)
    naqd.current_job().progress(1.0, "done")
    return "released"


def stamp_run(directory: str) -> float:
    """Append the start time, so a test can measure a rate."""
    now = time.time()
    with (Path(directory) / "stamps").open("a") as f:
        f.write(f"{now}\n")
    return now


def order_run(directory: str, label: str, pause: float = 0.0) -> None:
    """Append `label time` when the job starts, then sleep `pause` seconds."""
    with (Path(directory) / "order").open("a") as f:
        f.write(f"{label} {time.time()}\n")
    time.sleep(pause)


def own_id(pause: float = 0.0) -> str:
    """The id naqd.current_job() reports from a pool thread (threads are reused)."""
    import naqd

    time.sleep(pause)
    return naqd.current_job().id


def unserializable() -> object:
    """Returns a value JSON cannot carry: the job must fail, not succeed with null."""
    return {"when": object()}


def chain(url: str, directory: str, n: int) -> str:
    """Enqueue a follow-up job into queue `other` before this one ends: a burst must wait
    for it, though this job's own queue is empty by then."""
    from naqd import SyncClient

    with SyncClient(url) as client:
        return client.enqueue("tests.tasks:record", directory, n, queue="other").id


async def record_when_released(directory: str, n: int) -> int:
    """Log the start, then wait for a 'release' file before counting the run: a crash
    test's jobs stay in flight until the test lets them finish."""
    d = Path(directory)
    with (d / f"starts-{os.getpid()}").open("a") as f:
        f.write(f"{n}\n")
    while not (d / "release").exists():
        await asyncio.sleep(0.02)
    with (d / f"runs-{os.getpid()}").open("a") as f:
        f.write(f"{n}\n")
    return n


def trace_ids(message: str = "") -> dict[str, object]:
    """The OpenTelemetry span current in the task (a thread), the ids naqd's log lines
    carry, and a log line (JSON in a daemon) with `message`."""
    from loguru import logger
    from opentelemetry import trace

    from naqd.logs import _trace

    ctx = trace.get_current_span().get_span_context()
    if message:
        logger.info(message)
    return {
        "trace_id": trace.format_trace_id(ctx.trace_id),
        "span_id": trace.format_span_id(ctx.span_id),
        "log": list(_trace.get() or ()),
    }


def fail_until(path: str, **tags: object) -> str:
    """Fails while `path` is missing: a dead letter a requeue can then save."""
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing")
    return "saved"
