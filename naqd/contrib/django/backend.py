"""`NaqdBackend`: Django's task framework (`django.tasks`) on naqd. Tasks decorated
with Django's `@task` are enqueued as naqd jobs, after the transaction commits by
default, and run in naqd workers that import `naqd.contrib.django.worker`
(docs/integrations.md#django).

    TASKS = {
        "default": {
            "BACKEND": "naqd.contrib.django.NaqdBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"SERVERS": "nats://nats:4222"},
        }
    }
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, transaction

from naqd.client.sync import SyncClient
from naqd.contrib.django.compat import BaseTaskBackend, TaskResultDoesNotExist, task_enqueued
from naqd.contrib.django.results import (
    django_task_path,
    from_record,
    naqd_task_name,
    ready_result,
)

KNOWN_OPTIONS = {"SERVERS", "CONFIG", "ENQUEUE_ON_COMMIT", "DATABASE", "CLIENT_OPTIONS"}
REMEMBERED = 10_000  # results this process enqueued, for get_result before a worker starts


class NaqdBackend(BaseTaskBackend):  # type: ignore[misc]  # Django ships no type hints
    """OPTIONS: `SERVERS` (a URL or a list; default `$NAQD_SERVERS`, else
    nats://127.0.0.1:4222) or `CONFIG` (a naq.yaml: servers, credentials, TLS, signing
    keys); `ENQUEUE_ON_COMMIT` (default True: a task enqueued inside a transaction is
    published when it commits, never if it rolls back); `DATABASE` (the connection
    whose transaction counts, default "default"); `CLIENT_OPTIONS` (keyword arguments
    of `naqd.Client`). A Django queue name is the naqd queue of the same name."""

    supports_defer = True  # run_after: a delayed job held by the server
    supports_async_task = True  # run in the worker's thread pool through async_to_sync
    supports_get_result = True  # naqd's result records, from any process
    supports_priority = False  # naqd's priorities are named levels of a queue

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - KNOWN_OPTIONS
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']: unknown {sorted(unknown)}; "
                f"known: {sorted(KNOWN_OPTIONS)}"
            )
        self.on_commit = bool(self.options.get("ENQUEUE_ON_COMMIT", True))
        self.database = self.options.get("DATABASE", DEFAULT_DB_ALIAS)

    # -- enqueue --------------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        job_id = uuid.uuid4().hex
        result = ready_result(task, job_id, args, kwargs, self.alias)
        _remember(result)

        def publish() -> None:
            client = self.client()
            name = naqd_task_name(task.module_path)
            # All of the task's keyword arguments go through task_kwargs: none can be
            # taken for an option of enqueue itself.
            options: dict[str, Any] = dict(
                queue=task.queue_name, job_id=job_id, task_kwargs=dict(kwargs)
            )
            if task.run_after is not None:
                client.enqueue_at(task.run_after, name, *args, **options)
            else:
                client.enqueue(name, *args, **options)
            task_enqueued.send(type(self), task_result=result)

        if self.on_commit:
            # Outside a transaction (autocommit) Django runs it at once. robust=False:
            # a failed publish raises to the caller, as an enqueue outside a
            # transaction would, instead of being logged and lost.
            transaction.on_commit(publish, using=self.database)
        else:
            publish()
        return result

    # -- results --------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        known = _remembered(result_id)
        rec = self.client().record(result_id)
        if rec is None:
            if known is None:
                raise TaskResultDoesNotExist(result_id)
            return known  # enqueued here, no worker has taken it yet
        if known is not None:
            task, args, kwargs = known.task, known.args, known.kwargs
        else:
            path = django_task_path(rec.task)
            if path is None:
                raise TaskResultDoesNotExist(f"{result_id} is a naqd job, not a Django task")
            task, args, kwargs = _task_at(path), (), {}
        return from_record(task, rec, self.alias, args, kwargs)

    # -- the client -----------------------------------------------------------------------

    def client(self) -> SyncClient:
        """One connected client per process and configuration, shared by every thread
        (Django makes a backend object per thread)."""
        key = (repr(self.options.get("SERVERS")), self.options.get("CONFIG"),
               repr(sorted((self.options.get("CLIENT_OPTIONS") or {}).items())))  # fmt: skip
        return _shared_client(key, self._make_client)

    def _make_client(self) -> SyncClient:
        extra = dict(self.options.get("CLIENT_OPTIONS") or {})
        config_path = self.options.get("CONFIG")
        if config_path:
            from naqd.config.loader import load_config  # needs the daemon extra (pyyaml)

            return SyncClient.from_config(load_config(config_path), **extra).connect()
        servers = self.options.get("SERVERS") or os.environ.get("NAQD_SERVERS")
        if isinstance(servers, str) and "," in servers:
            servers = [s.strip() for s in servers.split(",") if s.strip()]
        return SyncClient(servers or "nats://127.0.0.1:4222", **extra).connect()


def _task_at(path: str) -> Any:
    from django.utils.module_loading import import_string

    try:
        return import_string(path)
    except ImportError as exc:
        raise TaskResultDoesNotExist(f"the task of this result is gone: {exc}") from exc


# -- per-process state ------------------------------------------------------------------

_lock = threading.Lock()
_clients: dict[Any, tuple[int, SyncClient]] = {}
_results: OrderedDict[str, Any] = OrderedDict()


def _shared_client(key: Any, make: Callable[[], SyncClient]) -> SyncClient:
    with _lock:
        found = _clients.get(key)
        if found is not None and found[0] == os.getpid():  # never one from before a fork
            return found[1]
        client = make()
        _clients[key] = (os.getpid(), client)
        return client


def _remember(result: Any) -> None:
    with _lock:
        _results[result.id] = result
        while len(_results) > REMEMBERED:
            _results.popitem(last=False)


def _remembered(result_id: str) -> Any:
    with _lock:
        return _results.get(result_id)


@atexit.register
def close_clients() -> None:
    """Close this process's clients (also for tests that change settings)."""
    with _lock:
        clients = [c for pid, c in _clients.values() if pid == os.getpid()]
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):  # at exit: nothing left to tell
            client.close()
