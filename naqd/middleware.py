"""Middleware: hooks a team adds around every job without patching naqd (an audit log,
a tenant check, custom metrics, traces, error reporting). docs/extending.md documents
the interface; this module is standard library only, so the thin client, the worker
and the scheduler all use it.

A middleware is any object; every method is optional, and each may be a plain function
or a coroutine function (awaited). Subclassing `Middleware`, whose methods do nothing,
is the documented way. A hook that raises is logged and counted
(`naqd_middleware_errors_total{hook}` in the daemon) and changes nothing else: the
enqueue goes ahead, the job's outcome stays what it was, and the job is settled once.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "HOOKS",
    "EnqueueMessage",
    "Hooks",
    "JobInfo",
    "Middleware",
    "WorkerInfo",
    "load_middleware",
    "set_error_reporter",
]

# Every hook a middleware may define, in the order a job meets them.
HOOKS = (
    "before_enqueue",
    "after_enqueue",
    "around_job",
    "on_success",
    "on_retry",
    "on_dead_letter",
    "on_cancel",
    "on_timeout",
    "on_schedule_fire",
    "on_missed_tick",
)

log = logging.getLogger("naqd.middleware")

# What a raising hook may raise and still be contained (as a task's own errors are).
_HOOK_ERRORS = (Exception, SystemExit, KeyboardInterrupt)


# -- what hooks are given ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueMessage:
    """One job on its way to NATS; the same object goes to before_enqueue and then to
    after_enqueue. `headers` is sent as the job message's NATS headers: add to it
    (trace context, a tenant). The headers naqd itself sets (`Nats-*`, `Naqd-*`) are put
    back after the hooks, so a hook cannot break dedupe, signatures or routing. `state`
    is the middleware's own, from before_enqueue to after_enqueue (a span, a timer)."""

    job_id: str
    task: str
    queue: str
    headers: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    host: str
    pid: int

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as a worker runs it. `headers` are the message's own (read-only: W3C
    `traceparent`, whatever a producer hook added); `attempt` counts from 1; `delivered`
    is the server's delivery count; `state` is a dict for a middleware to keep its own
    things in from around_job to the outcome hooks (a span, a timer), one per attempt."""

    id: str
    task: str
    queue: str
    attempt: int
    headers: Mapping[str, str]
    worker: WorkerInfo
    enqueued_at: float = 0.0
    delivered: int = 1
    timeout: float | None = None
    state: dict[str, Any] = field(default_factory=dict)


def job_info(
    job_id: str,
    task: str,
    queue: str,
    attempt: int,
    headers: Mapping[str, str] | None,
    *,
    enqueued_at: float = 0.0,
    delivered: int = 1,
    timeout: float | None = None,
) -> JobInfo:
    return JobInfo(
        job_id,
        task,
        queue,
        attempt,
        MappingProxyType(dict(headers or {})),
        this_worker(),
        enqueued_at,
        delivered,
        timeout,
    )


_WORKER: WorkerInfo | None = None


def this_worker() -> WorkerInfo:
    global _WORKER
    if _WORKER is None or _WORKER.pid != os.getpid():  # a forked child is another worker
        _WORKER = WorkerInfo(socket.gethostname(), os.getpid())
    return _WORKER


# -- the interface -----------------------------------------------------------------------


class Middleware:
    """The hooks, each doing nothing: override the ones you need (docs/extending.md).
    Any of them may be `async def` instead."""

    def before_enqueue(self, message: EnqueueMessage) -> Any:
        """Before the job is published: `message.headers` may be added to."""

    def after_enqueue(self, message: EnqueueMessage, error: BaseException | None) -> Any:
        """After the job was stored (`error` None) or could not be."""

    def around_job(self, job: JobInfo) -> Any:
        """A context manager (sync or async) that wraps the attempt's run and its outcome
        hooks, or None. Its exit gets the task's exception, if any; a context manager
        that swallows it changes nothing."""
        return None

    def on_success(self, job: JobInfo, result: Any) -> Any:
        """The job returned `result`; its record is stored and it is acked."""

    def on_retry(self, job: JobInfo, exc: BaseException | None, delay: float) -> Any:
        """The attempt raised `exc`; the job runs again after `delay` seconds."""

    def on_dead_letter(self, job: JobInfo, exc: BaseException | None, reason: str) -> Any:
        """The job is in the dead-letter stream for `reason` (failed, unknown_task,
        bad_arguments, unreadable, worker_lost); `exc` is None when nothing raised
        (its workers kept dying)."""

    def on_cancel(self, job: JobInfo) -> Any:
        """The job was cancelled (before or while it ran)."""

    def on_timeout(self, job: JobInfo, exc: BaseException) -> Any:
        """The attempt exceeded its timeout; on_retry or on_dead_letter follows."""

    def on_schedule_fire(self, schedule: Any, tick: datetime, job_id: str) -> Any:
        """The elected scheduler stored the job `job_id` for `schedule`'s `tick`."""

    def on_missed_tick(self, schedule: Any, tick: datetime) -> Any:
        """`schedule`'s `tick` was missed and skipped (`missed: skip`)."""


# -- calling them ------------------------------------------------------------------------

ErrorReporter = Callable[[str, object, BaseException], None]


def _log_error(hook: str, middleware: object, exc: BaseException) -> None:
    log.error(
        "middleware %s.%s raised %s: %s (ignored: the job goes on)",
        type(middleware).__name__,
        hook,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


_reporter: ErrorReporter = _log_error


def set_error_reporter(reporter: ErrorReporter | None) -> None:
    """Where raising hooks are reported in this process (the daemon's processes log them
    with loguru and count them in a metric); None: the standard `logging` module."""
    global _reporter
    _reporter = reporter or _log_error


Hook = tuple[object, Callable[..., Any]]  # (the middleware, its bound method)


class Hooks:
    """A list of middleware, resolved once to the hooks each defines: a hook a class
    leaves as `Middleware`'s no-op is not called at all, so an unused hook costs nothing
    per job. Falsy when there is no middleware."""

    def __init__(self, middleware: Iterable[object]) -> None:
        self.middleware = tuple(middleware)
        self.before_enqueue = self._defined("before_enqueue")
        self.after_enqueue = self._defined("after_enqueue")
        self.around_job = self._defined("around_job")
        self.on_success = self._defined("on_success")
        self.on_retry = self._defined("on_retry")
        self.on_dead_letter = self._defined("on_dead_letter")
        self.on_cancel = self._defined("on_cancel")
        self.on_timeout = self._defined("on_timeout")
        self.on_schedule_fire = self._defined("on_schedule_fire")
        self.on_missed_tick = self._defined("on_missed_tick")

    def __bool__(self) -> bool:
        return bool(self.middleware)

    def _defined(self, name: str) -> tuple[Hook, ...]:
        out = []
        for mw in self.middleware:
            fn = getattr(mw, name, None)
            if fn is None or not callable(fn):
                continue
            if getattr(type(mw), name, None) is getattr(Middleware, name):
                continue  # the base class's no-op
            out.append((mw, fn))
        return tuple(out)

    async def call(self, name: str, hooks: tuple[Hook, ...], *args: Any) -> None:
        """Call each hook in order, awaiting a coroutine; one that raises is reported and
        the next is called."""
        for mw, fn in hooks:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except _HOOK_ERRORS as exc:
                report(name, mw, exc)

    async def enqueue(self, message: EnqueueMessage) -> None:
        """before_enqueue, then naqd's own headers put back as they were."""
        own = {k: v for k, v in message.headers.items() if _reserved(k)}
        await self.call("before_enqueue", self.before_enqueue, message)
        headers = message.headers
        for key in [k for k in headers if _reserved(k) and k not in own]:
            del headers[key]
        headers.update(own)
        for key, value in list(headers.items()):
            if not isinstance(key, str) or not isinstance(value, str):
                report(
                    "before_enqueue",
                    self,
                    TypeError(f"header {key!r}: {value!r} is not a string: dropped"),
                )
                del headers[key]

    # around_job: entered before the run, left after the outcome hooks.

    async def enter(self, job: JobInfo) -> list[tuple[object, Any]]:
        """Enter each around_job context; those entered, to leave in reverse order."""
        entered: list[tuple[object, Any]] = []
        for mw, fn in self.around_job:
            try:
                cm = fn(job)
                if inspect.isawaitable(cm):
                    cm = await cm
                if cm is None:
                    continue
                if hasattr(cm, "__aenter__"):
                    await cm.__aenter__()
                else:
                    cm.__enter__()
                entered.append((mw, cm))
            except _HOOK_ERRORS as exc:
                report("around_job", mw, exc)
        return entered

    async def leave(self, entered: list[tuple[object, Any]], exc: BaseException | None) -> None:
        """Leave the contexts, innermost first, with the task's exception; what they
        return (a wish to swallow it) is ignored."""
        args = (None, None, None) if exc is None else (type(exc), exc, exc.__traceback__)
        for mw, cm in reversed(entered):
            try:
                if hasattr(cm, "__aexit__"):
                    await cm.__aexit__(*args)
                else:
                    cm.__exit__(*args)
            except _HOOK_ERRORS as err:
                report("around_job", mw, err)


def report(hook: str, middleware: object, exc: BaseException) -> None:
    try:
        _reporter(hook, middleware, exc)
    except Exception:  # a reporter that fails must not fail the job either
        log.exception("reporting a middleware error failed")


def _reserved(header: str) -> bool:
    return header.startswith(("Nats-", "Naqd-"))


# -- loading them ------------------------------------------------------------------------


def load_middleware(refs: Sequence[str | object]) -> list[object]:
    """naq.yaml's `middleware:` entries ("module:attr"; a class is instantiated with no
    arguments, anything else is used as is), or objects given directly. Raises
    ImportError or AttributeError naming the entry that cannot be loaded."""
    out: list[object] = []
    for ref in refs:
        if not isinstance(ref, str):
            out.append(ref)
            continue
        module_name, sep, attr = ref.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f'middleware {ref!r}: expected "package.module:Name"')
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise type(exc)(f"middleware {ref!r} cannot be loaded: {exc}") from exc
        out.append(obj() if isinstance(obj, type) else obj)
    return out


def hooks_of(middleware: Sequence[str | object] | Hooks | None) -> Hooks | None:
    """Hooks for `middleware`, or None when there is none (the hot paths test for None)."""
    if middleware is None:
        return None
    hooks = middleware if isinstance(middleware, Hooks) else Hooks(load_middleware(middleware))
    return hooks if hooks else None
