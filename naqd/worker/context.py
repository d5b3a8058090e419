"""What a running job sees: `naqd.current_job()` and its JobContext (cancel flag and
progress). Kept free of daemon dependencies so `import naqd` stays light; the worker's
CancelWatch (worker/cancels.py) creates the contexts."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import replace
from typing import Any

from naqd.client.errors import JobCancelled
from naqd.protocol.envelope import Envelope, ResultRecord

PROGRESS_EVERY = 0.2  # at most one progress write per job this often (the last one wins)

log = logging.getLogger("naqd.worker")

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "naqd_current_job", default=None
)


def current_job() -> JobContext:
    """The job this code runs in; RuntimeError outside a naqd job."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("naqd.current_job() called outside a running naqd job")
    return ctx


class JobContext:
    """What a running job can see and do. Thread-safe: sync jobs call it from the pool."""

    def __init__(
        self,
        env: Envelope,
        attempt: int,
        loop: asyncio.AbstractEventLoop,
        publish: Any,  # async (ResultRecord) -> None, or None when results are not stored
        base: ResultRecord,
    ) -> None:
        self.id = env.id
        self.task = env.task
        self.queue = env.queue
        self.attempt = attempt
        self._loop = loop
        self._publish = publish
        self._base = base

    # The rest starts at these class-level defaults (one per job: each instance
    # attribute set here cost time on every job, most are never changed).
    # A plain flag: set on the loop, read by the job's thread (an attribute store is
    # atomic); a threading.Event per job cost a Condition and a Lock.
    _cancel_requested = False
    _task: asyncio.Task[Any] | None = None  # set while a coroutine job runs
    cancel_sent = False  # we cancelled that task (the runner un-cancels it)
    _progress: tuple[float, str] | None = None
    _written: tuple[float, str] | None = None
    _flush_at = 0.0
    _flush_scheduled = False
    _flush_task: asyncio.Task[None] | None = None
    _closed = False

    # -- cancel -------------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested: a sync job should check it and stop."""
        return self._cancel_requested

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled when a cancel was requested (the job ends `cancelled`)."""
        if self._cancel_requested:
            raise JobCancelled(self.id)

    def enter(self, task: asyncio.Task[Any] | None) -> None:
        """The runner task is about to await the coroutine job itself: a cancel request
        from now on cancels that task (no extra task per job), until `leave`."""
        self._task = task
        if self._cancel_requested:
            self._cancel_task()

    def leave(self) -> None:
        self._task = None

    def request_cancel(self) -> None:
        self._cancel_requested = True
        self._cancel_task()

    def _cancel_task(self) -> None:
        if self._task is not None and not self._task.done() and not self.cancel_sent:
            self.cancel_sent = True
            self._task.cancel()

    # -- progress -----------------------------------------------------------------------

    def progress(self, fraction: float, message: str = "") -> None:
        """Store progress (0..1) and a message for `client.status()` and `naqd job`.
        Cheap to call often: writes are coalesced to one per 0.2 s, the last one wins."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress must be a number from 0 to 1, got {fraction!r}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be from 0 to 1, got {fraction!r}")
        self._progress = (float(fraction), str(message))
        if self._publish is None:
            return
        try:
            running = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            running = False
        if running:
            self._schedule_flush()
        else:
            self._loop.call_soon_threadsafe(self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self._flush_scheduled or self._closed:
            return
        self._flush_scheduled = True
        delay = max(0.0, self._flush_at - time.monotonic())
        self._loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        # Kept until it ends: the loop holds only a weak reference to a task.
        self._flush_task = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        self._flush_scheduled = False
        if self._closed or self._progress is None or self._progress == self._written:
            return
        self._written = self._progress
        self._flush_at = time.monotonic() + PROGRESS_EVERY
        try:
            await self._publish(self.with_progress(self._base))
        except Exception as exc:
            log.debug("progress write failed: %s", exc)

    def with_progress(self, rec: ResultRecord) -> ResultRecord:
        if self._progress is None:
            return rec
        return replace(rec, progress=self._progress[0], progress_message=self._progress[1])

    def close(self) -> None:
        """No progress write after this: the final record must stay the last one."""
        self._closed = True
