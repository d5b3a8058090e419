"""Typed tasks: `@naqd.task(...)` turns a function into a task object that carries its
own policy and its signature (docs/client.md#typed-tasks).

The object is still the function: calling it runs the function, here, now. Enqueueing
it (`client.enqueue(send, "a@b.c")`) type-checks the arguments against the function
(`ParamSpec`), binds them against its signature before anything is sent, and gives a
`Job[R]` whose `result()` is the function's return type. Every keyword of that call goes
to the task; the job's own options go through `.using(...)` (taskiq's `kicker()`,
dramatiq's `send_with_options`), so an option never collides with a task's keyword.

The worker finds the same object by its `module:qualname` and applies its policy, so a
job enqueued by name, from the CLI or from another language gets it too."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import CodeType, ModuleType
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar, overload

from naqd.client.delayed import utc_instant
from naqd.client.messages import task_name
from naqd.client.options import Options, parents, split_kwargs
from naqd.client.unique_rules import unique_mode as check_unique_mode
from naqd.client.unique_rules import unique_window
from naqd.protocol.envelope import validate_option, validate_priority, validate_queue
from naqd.protocol.options import check_backoff, exception_names

P = ParamSpec("P")
R = TypeVar("R")

Backoff = Sequence[float] | Mapping[str, Any]
"""A list of delays in seconds, or {"strategy", "base", "max", "jitter"}."""
Exceptions = type[BaseException] | str | Sequence[type[BaseException] | str]
"""Exception classes or their names (`"ValueError"`, `"app.errors.Transient"`)."""

_NONE = Options()
ROUTING = ("queue", "priority", "unique_for", "unique_mode")
"""The task options a producer applies (where the job goes, whether it is a duplicate).
The others (retries, backoff, retry_on, dont_retry_on, timeout, result_ttl) the worker
applies, from the task it imports: they hold however the job was enqueued."""


class Function(Protocol):
    """A plain function or method (what `Client.enqueue` accepts besides a name and a
    task object): having `__code__` keeps task objects out of the untyped overload."""

    __code__: CodeType

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


Untyped = str | Function | type[Any]
"""A task `Client.enqueue` takes untyped, with options as keywords: a name, a plain
function or method, or a class."""


class Task(Generic[P, R]):
    """A function with its options. `R` is what a job of it returns (for an async
    function, what the coroutine returns)."""

    fn: Callable[..., Any]
    options: Options  # the decorator's
    name: str  # "module:qualname"

    def __init__(self, fn: Callable[..., Any], options: Options) -> None:
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # __name__, __doc__...
        self.fn = fn
        self.options = options
        self.name = task_name(fn)
        self._routing = routing(options)  # the options a producer applies
        self._call = _NONE  # from .using(): this enqueue's own options
        self._when: float | datetime | None = None  # .using(delay=) or .using(at=)

    def using(
        self,
        *,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        backoff: Backoff | None = None,
        retry_on: Exceptions | None = None,
        dont_retry_on: Exceptions | None = None,
        priority: str | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        unique_mode: str | None = None,
        depends_on: Iterable[Any] = (),
        delay: float | timedelta | None = None,
        at: datetime | None = None,
    ) -> Self:
        """This task with options for the next enqueue; they win over the decorator's.
        `delay` (seconds or a timedelta, counted from the enqueue) or `at` (an aware
        datetime) makes a delayed job."""
        if delay is not None and at is not None:
            raise TypeError("pass delay or at, not both")
        call = Options(
            queue=queue,
            job_id=job_id,
            retries=retries,
            timeout=timeout,
            result_ttl=result_ttl,
            backoff=backoff,
            retry_on=retry_on,
            dont_retry_on=dont_retry_on,
            priority=priority,
            unique_key=unique_key,
            unique_for=unique_for,
            unique_mode=unique_mode,
            depends_on=parents(depends_on),
        )
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._call = call.over(self._call)
        if at is not None:
            copy._when = utc_instant(at)
        elif delay is not None:
            copy._when = seconds(delay)
            if copy._when < 0:
                raise ValueError(f"delay must not be negative, got {copy._when}")
        return copy

    def enqueue_options(self) -> Options:
        """The options of an enqueue of this task: `.using(...)`'s over the task's
        routing options, a delay counted from now."""
        call, when = self._call, self._when
        if when is None and call is _NONE:
            return self._routing
        if isinstance(when, float):
            when = datetime.fromtimestamp(time.time() + when, UTC)
        if when is not None:
            call = dataclasses.replace(call, run_at=when)
        return call.over(self._routing)

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        check_arguments(self.name, self.fn, args, kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


class SyncTask(Task[P, R]):
    """A task of a plain function."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]


class AsyncTask(Task[P, R]):
    """A task of an `async def` function: calling it gives the coroutine."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]


class TaskDecorator:
    """`@task(...)` with options: the options, waiting for the function."""

    def __init__(self, options: Options) -> None:
        self.options = options

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]

    @overload
    def __call__(self, fn: Callable[P, R], /) -> SyncTask[P, R]: ...

    def __call__(self, fn: Callable[..., Any], /) -> Task[Any, Any]:
        if isinstance(fn, Task):
            raise TypeError(f"{fn!r} is a task already")
        if not callable(fn):
            raise TypeError(f"@task decorates a function, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            return AsyncTask(fn, self.options)
        return SyncTask(fn, self.options)


@overload
def task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]


@overload
def task(fn: Callable[P, R], /) -> SyncTask[P, R]: ...


@overload
def task(
    *,
    queue: str | None = None,
    retries: int | None = None,
    backoff: Backoff | None = None,
    retry_on: Exceptions | None = None,
    dont_retry_on: Exceptions | None = None,
    timeout: float | timedelta | None = None,
    result_ttl: float | timedelta | None = None,
    priority: str | None = None,
    unique_for: float | timedelta | None = None,
    unique_mode: str | None = None,
) -> TaskDecorator: ...


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    queue: str | None = None,
    retries: int | None = None,
    backoff: Backoff | None = None,
    retry_on: Exceptions | None = None,
    dont_retry_on: Exceptions | None = None,
    timeout: float | timedelta | None = None,
    result_ttl: float | timedelta | None = None,
    priority: str | None = None,
    unique_for: float | timedelta | None = None,
    unique_mode: str | None = None,
) -> Task[Any, Any] | TaskDecorator:
    """Make `fn` a task, with the same option names as `Client.enqueue`; they apply to
    every job of it, however enqueued, below the enqueue's own options and above the
    queue's YAML. Checked here, so a bad option fails at import, not at the first job."""
    options = Options(
        queue=None if queue is None else validate_queue(queue),
        retries=None if retries is None else int(_at_least_zero("retries", retries)),
        backoff=None if backoff is None else _backoff(backoff),
        retry_on=exception_names(retry_on),
        dont_retry_on=exception_names(dont_retry_on),
        timeout=None if timeout is None else _at_least_zero("timeout", seconds(timeout)),
        result_ttl=None
        if result_ttl is None
        else _at_least_zero("result_ttl", seconds(result_ttl)),
        priority=validate_priority(priority),
        unique_for=None if unique_for is None else unique_window(unique_for),
        unique_mode=None if unique_mode is None else check_unique_mode(unique_mode),
    )
    decorator = TaskDecorator(options)
    return decorator if fn is None else decorator(fn)


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _at_least_zero(name: str, value: float) -> float:
    return validate_option(name, value) or 0.0


def _duration(name: str, value: float | timedelta | None) -> float | None:
    return None if value is None else _at_least_zero(name, seconds(value))


def _backoff(raw: Backoff) -> Any:
    return check_backoff(list(raw) if isinstance(raw, Sequence) else dict(raw))


def routing(options: Options) -> Options:
    return Options(**{name: getattr(options, name) for name in ROUTING})


def prepare(
    task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any] | str, dict[str, Any], Options]:
    """What `Client.enqueue(task, *args, **kwargs)` means: the task to name, its keyword
    arguments and the job's options. A task object's keywords all go to it; for a name or
    a plain function, option keywords are options (`task_kwargs` for clashing names). A
    task the producer has (a task object, a function, a name whose module is loaded)
    gets its arguments bound against its signature here: a wrong call raises TypeError
    now, not in the worker."""
    if isinstance(task, Task):
        task.check_arguments(args, kwargs)
        return task.name, kwargs, task.enqueue_options()
    options, kwargs = split_kwargs(kwargs)
    found = task if callable(task) else loaded(task) if isinstance(task, str) else None
    if isinstance(found, Task):
        options = options.over(found._routing)
        found.check_arguments(args, kwargs)
    elif found is not None:
        name = task if isinstance(task, str) else getattr(found, "__qualname__", repr(found))
        check_arguments(name, found, args, kwargs)
    return task, kwargs, options


def loaded(name: str) -> Callable[..., Any] | None:
    """The callable `name` ("module:qualname") names, if its module is already imported
    here. Never imports: a producer that names a task may not have its code, and an
    enqueue must not run an application's module as a side effect."""
    module_name, _, qualname = name.partition(":")
    obj: Any = sys.modules.get(module_name)
    if obj is None or not qualname:
        return None
    for part in qualname.split("."):
        if part.startswith("_"):
            return None
        obj = getattr(obj, part, None)
        if obj is None or isinstance(obj, ModuleType):
            return None
    return obj if callable(obj) else None


# Whether arguments fit depends only on how many are positional and which are named, so
# the verdict is kept per shape: Signature.bind costs several microseconds, more than a
# no-op job. The client checks before sending, the worker (worker/tasks.py) before running.
_MAX_SHAPES = 10_000
_shapes: dict[tuple[str, Callable[..., Any], int, tuple[str, ...]], str] = {}


def argument_mismatch(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> str:
    """ "" when the arguments fit `fn` (or it has no signature), else why not."""
    shape = (name, fn, len(args), tuple(kwargs) if kwargs else ())
    verdict = _shapes.get(shape)
    if verdict is None:
        verdict = _bind(name, fn, args, kwargs)
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        _shapes[shape] = verdict
    return verdict


def check_arguments(
    name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if verdict := argument_mismatch(name, fn, args, kwargs):
        raise TypeError(verdict)


def _bind(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> str:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature (some builtins): the call decides
        return ""
    try:
        sig.bind(*args, **(kwargs or {}))
    except TypeError as exc:
        return f"arguments do not fit {name}{sig}: {exc}"
    return ""
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        return f"arguments do not fit {name}{sig}: {exc}"
    return ""
