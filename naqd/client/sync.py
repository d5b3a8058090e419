"""A blocking client: one event loop in one private thread, one connection for its life,
so it works from any thread, including while another event loop runs elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from naqd.client.client import Client
from naqd.client.control import JobStatus
from naqd.client.delayed import DelayedJob
from naqd.client.errors import ConnectError
from naqd.client.queues import QueueInfo
from naqd.client.schedules import ScheduleInfo
from naqd.client.tasks import Task, Untyped
from naqd.protocol.envelope import ResultRecord

if TYPE_CHECKING:
    from naqd.client.deadletters import DeadLetters
    from naqd.client.explore import DeadLetterRow
    from naqd.client.pages import Page
    from naqd.models import Config, ScheduleConfig
    from naqd.protocol.deadletter import DeadLetter

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class SyncJob(Generic[R]):
    """A handle to an enqueued job; `R` is what its task returns."""

    def __init__(self, client: SyncClient, job_id: str, created: bool = True) -> None:
        self.client = client
        self.id = job_id
        self.created = created  # as on Job

    def result(self, timeout: float | None = None) -> R:
        return self.client.result(self.id, timeout=timeout)  # type: ignore[no-any-return]

    def status(self) -> JobStatus:
        return self.client.status(self.id)

    def cancel(self) -> bool:
        return self.client.cancel(self.id)

    def __repr__(self) -> str:
        return f"SyncJob({self.id!r})"


class SyncClient:
    def __init__(self, servers: str | list[str] = "nats://127.0.0.1:4222", **options: Any):
        self._client = Client(servers, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> SyncClient:
        """Servers, credentials, TLS, serializer and keys from naq.yaml (Client.from_config)."""
        sync = cls()
        sync._client = Client.from_config(config, **options)
        return sync

    def connect(self) -> SyncClient:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="naqd-client", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            self._run(self._client.connect())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def close(self) -> None:
        """Never raises (Client.close logs a problem once)."""
        if self._loop is None:
            return
        try:
            self._run(self._client.close())
        except Exception:  # the loop itself failed: nothing more to release
            pass
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            # Tasks nats-py left behind (a subscription's reader after a lost connection)
            # end here, not as "coroutine was never awaited" when the loop is collected.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_cancel_leftovers(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            loop.close()

    def __enter__(self) -> SyncClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise ConnectError(
                "the client is not connected: use `with SyncClient(...)` or `client.connect()`"
            )
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @overload
    def enqueue(self, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> SyncJob[R]: ...

    @overload
    def enqueue(self, task: Untyped, /, *args: Any, **kwargs: Any) -> SyncJob[Any]: ...

    def enqueue(self, task: Any, /, *args: Any, **kwargs: Any) -> SyncJob[Any]:
        """Client.enqueue, blocking (the same options)."""
        job = self._run(self._client.enqueue(task, *args, **kwargs))
        return SyncJob(self, job.id, job.created)

    @overload
    def enqueue_many(
        self, task: Task[P, R], calls: Iterable[Sequence[Any]], /
    ) -> list[SyncJob[R]]: ...

    @overload
    def enqueue_many(
        self, task: Untyped, calls: Iterable[Sequence[Any]], /, **options: Any
    ) -> list[SyncJob[Any]]: ...

    def enqueue_many(
        self, task: Any, calls: Iterable[Sequence[Any]], /, **options: Any
    ) -> list[SyncJob[Any]]:
        jobs = self._run(self._client.enqueue_many(task, calls, **options))
        return [SyncJob(self, job.id) for job in jobs]

    @overload
    def enqueue_at(
        self, when: datetime, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> SyncJob[R]: ...

    @overload
    def enqueue_at(
        self, when: datetime, task: Untyped, /, *args: Any, **kwargs: Any
    ) -> SyncJob[Any]: ...

    def enqueue_at(self, when: datetime, task: Any, /, *args: Any, **kwargs: Any) -> SyncJob[Any]:
        job = self._run(self._client.enqueue_at(when, task, *args, **kwargs))
        return SyncJob(self, job.id, job.created)

    @overload
    def enqueue_in(
        self, delay: float | timedelta, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> SyncJob[R]: ...

    @overload
    def enqueue_in(
        self, delay: float | timedelta, task: Untyped, /, *args: Any, **kwargs: Any
    ) -> SyncJob[Any]: ...

    def enqueue_in(
        self, delay: float | timedelta, task: Any, /, *args: Any, **kwargs: Any
    ) -> SyncJob[Any]:
        job = self._run(self._client.enqueue_in(delay, task, *args, **kwargs))
        return SyncJob(self, job.id, job.created)

    def cancel(self, job_id: str) -> bool:
        return self._run(self._client.cancel(job_id))

    def delayed(self) -> list[DelayedJob]:
        return self._run(self._client.delayed())

    def result(self, job_id: str, timeout: float | None = None) -> Any:
        return self._run(self._client.result(job_id, timeout=timeout))

    def wait(self, job_id: str, timeout: float | None = None) -> ResultRecord:
        return self._run(self._client.wait(job_id, timeout=timeout))

    def status(self, job_id: str) -> JobStatus:
        return self._run(self._client.status(job_id))

    def record(self, job_id: str) -> ResultRecord | None:
        return self._run(self._client.record(job_id))

    # -- schedules from code (naqd/client/schedules.py) ---------------------------------

    def schedule(
        self, name: str, task: str | Callable[..., Any], *args: Any, **kwargs: Any
    ) -> ScheduleInfo:
        return self._run(self._client.schedule(name, task, *args, **kwargs))

    def modify_schedule(self, name: str, **changes: Any) -> ScheduleInfo:
        return self._run(self._client.modify_schedule(name, **changes))

    def remove_schedule(self, name: str) -> bool:
        return self._run(self._client.remove_schedule(name))

    def pause_schedule(self, name: str) -> None:
        self._run(self._client.pause_schedule(name))

    def resume_schedule(self, name: str) -> None:
        self._run(self._client.resume_schedule(name))

    def get_schedule(self, name: str) -> ScheduleInfo | None:
        return self._run(self._client.get_schedule(name))

    def list_schedules(self) -> list[ScheduleInfo]:
        return self._run(self._client.list_schedules())

    def trigger_schedule(self, name: str) -> str:
        return self._run(self._client.trigger_schedule(name))

    def schedule_definition(self, name: str) -> ScheduleConfig:
        return self._run(self._client.schedule_definition(name))

    # -- queues (naqd/client/queues.py) -------------------------------------------------

    def pause_queue(self, queue: str, until: datetime | None = None) -> None:
        self._run(self._client.pause_queue(queue, until))

    def resume_queue(self, queue: str) -> None:
        self._run(self._client.resume_queue(queue))

    def queue_info(self, queue: str) -> QueueInfo:
        return self._run(self._client.queue_info(queue))

    def queues(self) -> list[QueueInfo]:
        return self._run(self._client.queues())

    def declare_queue(self, queue: str) -> None:
        self._run(self._client.declare_queue(queue))

    # -- dead letters (naqd/client/deadletters.py) --------------------------------------

    @property
    def dead_letters(self) -> SyncDeadLetters:
        """`client.dead_letters`, blocking; the same errors."""
        return SyncDeadLetters(self)


class SyncDeadLetters:
    """The blocking face of `Client.dead_letters`: each call runs on the client's loop.
    `scan` has no blocking form: `list` reads the same entries."""

    def __init__(self, client: SyncClient) -> None:
        self._client = client

    def _run(self, call: Callable[[DeadLetters], Coroutine[Any, Any, T]]) -> T:
        return self._client._run(_on_dead_letters(self._client._client, call))

    def list(self, queue: str | None = None) -> list[DeadLetter]:
        return self._run(lambda d: d.list(queue))

    def get(self, entry_id: str) -> DeadLetter | None:
        return self._run(lambda d: d.get(entry_id))

    def count(self, queue: str | None = None) -> int:
        return self._run(lambda d: d.count(queue))

    def counts(self) -> dict[str, int]:
        return self._run(lambda d: d.counts())

    def page(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        error_type: str | None = None,
        reason: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[DeadLetterRow]:
        return self._run(
            lambda d: d.page(
                queue=queue,
                task=task,
                error_type=error_type,
                reason=reason,
                cursor=cursor,
                limit=limit,
            )
        )

    def requeue(self, entry: DeadLetter) -> None:
        self._run(lambda d: d.requeue(entry))

    def requeue_id(self, job_id: str) -> DeadLetter:
        return self._run(lambda d: d.requeue_id(job_id))

    def delete(self, job_id: str) -> DeadLetter:
        return self._run(lambda d: d.delete(job_id))

    def purge(self, queue: str) -> int:
        return self._run(lambda d: d.purge(queue))


async def _on_dead_letters(
    client: Client, call: Callable[[DeadLetters], Coroutine[Any, Any, T]]
) -> T:
    """`client.dead_letters` is read on the loop: before connect it raises the client's
    own ConnectError, as every other call does."""
    return await call(client.dead_letters)


async def _cancel_leftovers() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
