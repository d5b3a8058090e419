"""The naqd side of Django tasks: list this module in `tasks.imports` (or `naqd worker
QUEUE --import naqd.contrib.django.worker`) with DJANGO_SETTINGS_MODULE set, and the
worker runs the Django tasks that `NaqdBackend` enqueued (docs/integrations.md#django).

A Django task `myapp.tasks.send_email` travels as the naqd task
`naqd.contrib.django.worker:myapp.tasks.send_email`: this module answers every such
name with a runner, so the worker's allow-list, records, retries and dead letters apply
as to any task, and a record names the Django task it ran. A runner only runs an
object decorated with Django's `@task` for a `NaqdBackend`, from a module of an
installed app."""

from __future__ import annotations

import importlib
import sys
import traceback
from functools import cached_property
from typing import Any

import django
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.utils import timezone

if not apps.ready:
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            f"naqd.contrib.django.worker needs Django configured: set DJANGO_SETTINGS_MODULE "
            f"in the worker's environment ({exc})"
        ) from exc

from naqd.contrib.django.compat import (
    Task,
    TaskContext,
    TaskError,
    TaskResultStatus,
    task_finished,
    task_started,
)
from naqd.contrib.django.results import running_result
from naqd.worker.context import current_job
from naqd.worker.tasks import TaskNotFound

PREFIX = f"{__name__}:"


class DjangoTaskRunner:
    """Runs the Django task at `path` (`package.module.function`) in a naqd job."""

    def __init__(self, path: tuple[str, ...]) -> None:
        self._path = path

    def __getattr__(self, name: str) -> DjangoTaskRunner:
        if name.startswith("_"):  # dunder probes (inspect, copy) are not path parts
            raise AttributeError(name)
        return DjangoTaskRunner((*self._path, name))

    def __repr__(self) -> str:
        return f"<Django task {'.'.join(self._path)} run by naqd>"

    @cached_property
    def _task(self) -> Any:
        return find_task(".".join(self._path))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task = self._task
        job = current_job()
        result = running_result(task, job.id, job.attempt, args, kwargs)
        close_old_connections()  # as Django does around a request: no stale connection
        task_started.send(sender=type(task.get_backend()), task_result=result)
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=result), *args, **kwargs)
            else:
                value = task.call(*args, **kwargs)
        except BaseException as exc:
            _finished(task, result, TaskResultStatus.FAILED, exc)
            raise
        finally:
            close_old_connections()
        _finished(task, result, TaskResultStatus.SUCCESSFUL, None)
        return value


def _finished(task: Any, result: Any, status: Any, exc: BaseException | None) -> None:
    """Django's task_finished for this attempt (naqd may still retry a failed one)."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    if exc is not None:
        path = f"{type(exc).__module__}.{type(exc).__qualname__}"
        text = "".join(traceback.format_exception(exc))
        result.errors.append(TaskError(exception_class_path=path, traceback=text))
    task_finished.send(sender=type(task.get_backend()), task_result=result)


def find_task(path: str) -> Any:
    """The Django Task object at `path`; TaskNotFound (the job is dead-lettered as an
    unknown task, not retried) unless it is one, for a NaqdBackend, in an installed app."""
    from naqd.contrib.django.backend import NaqdBackend

    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise TaskNotFound(f"{path!r} is not a module path of a Django task")
    if module_name not in sys.modules and apps.get_containing_app_config(module_name) is None:
        raise TaskNotFound(f"{module_name!r} is not in an installed app of this Django project")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise TaskNotFound(f"no Django task {path!r}: {exc}") from exc
    if not isinstance(obj, Task):
        raise TaskNotFound(f"{path!r} is not a Django task (decorate it with @task)")
    if not isinstance(obj.get_backend(), NaqdBackend):
        raise TaskNotFound(f"Django task {path!r} is not for a naqd backend ({obj.backend!r})")
    return obj


def __getattr__(name: str) -> DjangoTaskRunner:
    """`naqd.contrib.django.worker:myapp.tasks.send_email` resolves here, part by part."""
    if name.startswith("_"):
        raise AttributeError(name)
    return DjangoTaskRunner((name,))
