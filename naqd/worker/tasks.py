"""Resolving 'module:qualname' task names to callables, and a task object's own policy
(`@naqd.task(...)`), cached per process."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from naqd.client.tasks import Task, argument_mismatch

if TYPE_CHECKING:
    from naqd.client.options import Options
    from naqd.protocol.envelope import Envelope

# What a task's decorator decides for its jobs in the worker (the producer applies its
# queue, priority and unique_for): each only where the enqueue itself set none.
WORKER_OPTIONS = ("retries", "timeout", "result_ttl", "backoff", "retry_on", "dont_retry_on")


class TaskNotFound(LookupError):
    """The task name does not resolve: retrying cannot help."""


@cache
def resolve_task(name: str) -> Callable[..., Any]:
    """The function to call: a task object's own function (so an `async def` task runs
    as a coroutine)."""
    obj = _lookup(name)
    return obj.fn if isinstance(obj, Task) else obj


@cache
def task_policy(name: str) -> tuple[tuple[str, Any], ...]:
    """The worker-side options `name`'s decorator declared, as (option, value) pairs; ()
    for a plain function. Imports the task's module, as running it would: call it only
    for an admitted job."""
    obj = _lookup(name)
    return declared(obj.options) if isinstance(obj, Task) else ()


def declared(options: Options) -> tuple[tuple[str, Any], ...]:
    """The worker-side options set in `options`, as (option, value) pairs."""
    pairs = ((n, getattr(options, n)) for n in WORKER_OPTIONS)
    return tuple((n, value) for n, value in pairs if value is not None)


def with_task_policy(env: Envelope) -> Envelope:
    """The job as the worker applies it: the enqueue's own options, then the task's, then
    (left None here) the queue's YAML. A task that does not resolve is left alone: that
    fails when the job runs, as TaskNotFound."""
    try:
        declared = task_policy(env.task)
    except Exception:
        return env
    if declared:
        fill(env, declared)
    return env


def fill(env: Envelope, declared: tuple[tuple[str, Any], ...]) -> None:
    """Each declared option the job did not set, written into `env` in place: only ever
    an envelope just decoded, which nothing else holds yet (dataclasses.replace cost
    ~10 us a job on the loaded test box, this ~0.5 us)."""
    for name, value in declared:
        if getattr(env, name) is None:
            setattr(env, name, value)


@cache
def _lookup(name: str) -> Any:
    module_name, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskNotFound(f"cannot import module {module_name!r} of task {name!r}: {exc}") from exc
    for part in qualname.split("."):
        if part.startswith("_"):
            raise TaskNotFound(f"task {name!r}: private names are not tasks")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TaskNotFound(f"module {module_name!r} has no {qualname!r}") from None
        if isinstance(obj, ModuleType):
            # `tasks:os.system` must not reach whatever a task module imported.
            raise TaskNotFound(f"task {name!r} goes through module {obj.__name__!r}")
    if not callable(obj):
        raise TaskNotFound(f"task {name!r} is not callable")
    defined_in = getattr(obj, "__module__", None) or ""
    if defined_in != module_name and not defined_in.startswith(module_name + "."):
        # `from subprocess import run` in a task module does not make `run` a task.
        raise TaskNotFound(
            f"task {name!r} is defined in {defined_in or 'an unknown module'!r}, "
            f"not in {module_name!r}: enqueue it under the module that defines it"
        )
    return obj


def task_known(name: str) -> bool:
    """Whether `name` resolves to a task (for metric labels: unknown names share one).
    Never imports anything: a name whose module is not loaded yet is unknown, since a
    refused job's task (outside the allow-list) must never be imported, even for a label.
    Every task that ran has had its module loaded by resolve_task."""
    if name.partition(":")[0] not in sys.modules:
        return False
    try:
        resolve_task(name)
    except Exception:  # not only TaskNotFound: "" or "a b" fail inside importlib
        return False
    return True


class BadArguments(TypeError):
    """The job's arguments do not fit the task's signature: retrying cannot help."""


@cache
def is_coroutine_task(name: str) -> bool:
    return inspect.iscoroutinefunction(resolve_task(name))


def check_arguments(name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
    """Refuse arguments that do not fit the task (the verdict is cached per call shape,
    client/tasks.py)."""
    if verdict := argument_mismatch(name, fn, args, kwargs):
        raise BadArguments(verdict)
