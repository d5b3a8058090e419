"""The async producer API: enqueue jobs, read their status and results.

Importable without uvloop, prometheus or any daemon code, so applications pay only for
nats-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import (
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from naqd.client.control import ControlMixin, JobStatus
from naqd.client.deadletters import DeadLetters
from naqd.client.delayed import DelayedJob, require_schedules, utc_instant
from naqd.client.errors import (
    ConnectError,
    EnqueueError,
)
from naqd.client.faults import guarded
from naqd.client.link import Link
from naqd.client.messages import BuildMixin, Message, task_name
from naqd.client.options import MANY_OPTIONS, Options
from naqd.client.queues import QueueMixin
from naqd.client.readiness import missing_streams
from naqd.client.registry import KnownQueues
from naqd.client.results import ResultsMixin
from naqd.client.schedules import ScheduleMixin
from naqd.client.tasks import Task, Untyped, prepare
from naqd.client.unique import claim
from naqd.client.unique import release as release_unique
from naqd.client.unique_rules import DELAYED_MODES, UniqueSpec, lock_key
from naqd.middleware import EnqueueMessage, Hooks, hooks_of
from naqd.protocol.envelope import Encoding, load_cloudpickle, validate_queue
from naqd.protocol.names import (
    DEFAULT_PRIORITY,
    DELAYED_SUBJECT_PREFIX,
    HDR_MSG_ID,
    JOBS_STREAM,
    batch_headers,
    batch_stream,
    priority_consumer_name,
    under,
)
from naqd.protocol.signing import Keyring, keyring_from_config
from naqd.transport import natsauth
from naqd.transport.streamwriter import Batching, StreamWriter

if TYPE_CHECKING:
    from naqd.client.explore import Explorer
    from naqd.models import Config

P = ParamSpec("P")
R = TypeVar("R")
_DENIED = "permissions violation for publish to "

_RETRYABLE = (
    NatsTimeoutError,
    asyncio.TimeoutError,
    NoStreamResponseError,
    NoRespondersError,
    ServiceUnavailableError,
)


class Job(Generic[R]):
    """A handle to an enqueued job; `R` is what its task returns (`Any` for a job
    enqueued by name or as a plain function). `created` is False when a unique enqueue
    returned the job that already held its key (or, debounced, gave that job its
    arguments)."""

    def __init__(self, client: Client, job_id: str, created: bool = True) -> None:
        self.client = client
        self.id = job_id
        self.created = created

    async def result(self, timeout: float | None = None) -> R:
        return await self.client.result(self.id, timeout=timeout)  # type: ignore[no-any-return]

    async def status(self) -> JobStatus:
        return await self.client.status(self.id)

    async def cancel(self) -> bool:
        return await self.client.cancel(self.id)

    def __repr__(self) -> str:
        return f"Job({self.id!r})"


@guarded
class Client(BuildMixin, ResultsMixin, ScheduleMixin, ControlMixin, QueueMixin):
    """Async client. Use as `async with Client(url) as client:` or call connect()/close()."""

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        serializer: Encoding = "json",
        default_queue: str = "default",
        publish_deadline: float = 10.0,
        connect_deadline: float = 10.0,
        nc: NATS | None = None,
        signing_key: str | Keyring | None = None,
        max_payload: int = 1024 * 1024,
        connect_options: dict[str, Any] | None = None,
        tls_required: bool = False,
        background_connect: bool = False,
        request_timeout: float = 5.0,
        check_queues: bool = True,
        middleware: Sequence[object] | Hooks | None = None,
    ) -> None:
        """`connect_options` go to nats-py's connect (user, password, token, tls,
        user_credentials, ...); `Client.from_config` fills them from naq.yaml.
        `background_connect`: start even while NATS is down (docs/client.md#connecting).
        `request_timeout`: how long one JetStream API request may wait for its answer.
        `check_queues`: refuse an enqueue to a queue no daemon serves and nobody declared
        (QueueNotFound, docs/client.md#known-queues).
        `middleware`: objects (or "module:Name" strings) whose before_enqueue and
        after_enqueue hooks run around every enqueue (docs/extending.md)."""
        self.check_queues = check_queues
        self._known: KnownQueues | None = None
        self.background_connect = background_connect
        self.request_timeout = request_timeout
        self._link: Link | None = None
        self.connect_deadline = connect_deadline
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.serializer: Encoding = serializer
        self.keyring = (
            Keyring.from_keys(signing_key) if isinstance(signing_key, str) else signing_key
        )
        if serializer == "pickle" and self.keyring is None:
            raise ValueError("serializer='pickle' needs a signing_key: workers refuse unsigned")
        if serializer == "pickle":
            load_cloudpickle()  # missing: fail here, naming the extra, not at the first enqueue
        self.max_payload = max_payload
        self.connect_options = dict(connect_options or {})
        self.tls_required = tls_required
        self.denied: dict[str, str] = {}  # subject -> the server's permissions violation
        self.default_queue = default_queue
        self.publish_deadline = publish_deadline
        self._nc = nc
        self._levels_ok: set[tuple[str, str]] = set()  # priority levels seen to exist
        self._writer: StreamWriter | None = None  # enqueue_many's pipelined writes
        self._dead_letters: DeadLetters | None = None
        self._explorer: Explorer | None = None
        self.hooks = hooks_of(middleware)  # None without middleware: no cost per enqueue

    @classmethod
    def from_config(cls, config: Config, **options: Any) -> Client:
        """A client with naq.yaml's servers, credentials, TLS, serializer and keys."""
        options.setdefault("serializer", config.tasks.serializer)
        options.setdefault("signing_key", keyring_from_config(config.tasks))
        options.setdefault("max_payload", config.tasks.max_payload)
        options.setdefault("connect_options", natsauth.connect_options(config.nats))
        options.setdefault("tls_required", natsauth.tls_enforced(config.nats))
        options.setdefault("middleware", config.middleware)
        return cls(config.nats.urls, **options)

    async def connect(self) -> Client:
        """Raises NatsAuthError at once if NATS rejects the credentials or TLS, and
        ConnectError when no server answers within `connect_deadline`. With
        `background_connect=True` it returns at once and keeps trying; calls fail fast
        with ConnectError until the connection is up."""
        if self._nc is not None:  # a connection the caller owns, or connected already
            self._connected(self._nc)
            return self
        if self._link is not None:  # connecting in the background already
            return self
        self._link = Link(
            self.servers, self.connect_options, tls_required=self.tls_required,
            connect_deadline=self.connect_deadline, on_error=self._on_error,
        )  # fmt: skip
        self._link.on_connect = self._connected
        try:
            await self._link.open(self.background_connect)
        except ConnectError:
            self._link.closed = True
            raise
        return self

    def _connected(self, nc: NATS) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=self.request_timeout)
        self._bucket: Any = None

    def _require_connected(self) -> None:
        """Every public call starts here (naqd/client/faults.py)."""
        self.nc  # noqa: B018 - raises ConnectError when there is no connection

    def _on_error(self, exc: Exception) -> None:
        """Remember subjects the server says we may not publish to, so an enqueue there
        fails with that reason instead of a timeout (the link logs the error)."""
        text = str(exc)
        at = text.lower().find(_DENIED)
        if at >= 0:
            self.denied[text[at + len(_DENIED) :].strip().strip("'\"")] = text

    async def close(self) -> None:
        """Never raises, and logs one line at most (a web application's shutdown must
        not fail because NATS is down)."""
        if self._link is None:  # not connected, or a connection the caller owns
            with contextlib.suppress(Exception):
                await self._stop_helpers()
            self._nc = None
            return
        link, self._link = self._link, None
        await link.close(before=self._stop_helpers)
        self._nc = None
        self._dead_letters = None

    async def _stop_helpers(self) -> None:
        if self._explorer is not None:
            explorer, self._explorer = self._explorer, None
            await explorer.close()
        if self._known is not None:
            known, self._known = self._known, None
            await known.stop()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.stop()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def nc(self) -> NATS:
        """The connection; ConnectError when there is none (yet)."""
        if self._nc is not None:
            return self._nc
        if self._link is not None:
            return self._link.require()
        raise ConnectError(
            "the client is not connected: use `async with Client(...)` or `await client.connect()`"
        )

    @property
    def dead_letters(self) -> DeadLetters:
        """The dead-letter stream: list, page, get, requeue, delete (docs/client.md)."""
        if self._dead_letters is None:
            self._dead_letters = DeadLetters(self.nc, self.request_timeout)
        return self._dead_letters

    @property
    def explorer(self) -> Explorer:
        """The console's reads (naqd/client/explore.py) on this connection: one per
        client, so its id index (`await client.explorer.start()`) serves every caller."""
        if self._explorer is None:
            from naqd.client.explore import Explorer

            self._explorer = Explorer(self)
        return self._explorer

    # -- enqueue ------------------------------------------------------------------------

    @overload
    async def enqueue(self, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...

    @overload
    async def enqueue(
        self,
        task: Untyped,
        /,
        *args: Any,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        depends_on: Iterable[str | Job[Any]] | None = None,
        backoff: Any = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        priority: str | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        unique_mode: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Job[Any]: ...

    async def enqueue(self, task: Any, /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Store a job; returns once JetStream has it.

        A task object (`@naqd.task`) takes its own arguments only, checked against its
        signature; the job's options come from `task.using(...)` over the task's own
        (docs/client.md#typed-tasks). A name or a plain function takes the options below
        as keywords; keyword names that are options reach the task through
        `task_kwargs={...}`.

        With `depends_on`, the job waits until every listed job succeeded, and fails
        with a reason naming the parent if one fails (docs/scheduling.md); this needs a
        running naqd scheduler.
        Retry options override the task's and the queue's: `retries`, `backoff` (a list of
        delays in seconds, or `{"strategy": "exponential"|"linear"|"fixed", "base": s,
        "max": s, "jitter": 0-1}`), `retry_on` / `dont_retry_on` (exception classes or
        names).

        With `unique_key`, `unique_for` and/or `unique_mode`, a second enqueue with the
        same key is deduplicated as the mode says ("until_done", "throttle", "debounce",
        "latest"; docs/job-control.md#unique-jobs); `job.created` tells which happened."""
        target, kwargs, options = prepare(task, args, kwargs)
        return await self._submit(target, args, kwargs, options)

    @overload
    async def enqueue_at(
        self, when: datetime, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Job[R]: ...

    @overload
    async def enqueue_at(
        self,
        when: datetime,
        task: Untyped,
        /,
        *args: Any,
        queue: str | None = None,
        job_id: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        backoff: Any = None,
        retry_on: Any = None,
        dont_retry_on: Any = None,
        priority: str | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        unique_mode: str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Job[Any]: ...

    async def enqueue_at(self, when: datetime, task: Any, /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Run a job at `when` (timezone-aware; naive datetimes are refused). The server
        holds it (`Nats-Schedule: @at`, nats-server >= 2.12): it survives restarts of
        every naqd process and costs naqd nothing while it waits. A unique delayed job
        ("until_done" or "throttle") holds its key from now until `unique_for` after
        `when`; "debounce" and "latest" wait `unique_for` themselves and take no `when`."""
        at = utc_instant(when)
        target, kwargs, options = prepare(task, args, kwargs)
        return await self._submit(target, args, kwargs, options.replace(run_at=at))

    @overload
    async def enqueue_in(
        self, delay: float | timedelta, task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Job[R]: ...

    @overload
    async def enqueue_in(
        self, delay: float | timedelta, task: Untyped, /, *args: Any, **kwargs: Any
    ) -> Job[Any]: ...

    async def enqueue_in(
        self, delay: float | timedelta, task: Any, /, *args: Any, **kwargs: Any
    ) -> Job[Any]:
        """Run a job after `delay` (seconds or a timedelta); see enqueue_at."""
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        when = datetime.fromtimestamp(time.time() + seconds).astimezone()
        return await self.enqueue_at(when, task, *args, **kwargs)

    async def declare_queue(self, queue: str) -> None:
        """Declare a queue whose workers start later, so enqueueing to it is accepted
        (by every client) before any daemon serves it (docs/client.md#known-queues)."""
        validate_queue(queue)
        await self._registry().declare(queue)

    async def _declared_queues(self) -> list[str]:
        return await self._registry().all()

    def _registry(self) -> KnownQueues:
        if self._known is None:
            self._known = KnownQueues(
                self._js,
                self.request_timeout,
                lambda: self._nc is not None and self._nc.is_connected,
            )
        return self._known

    async def _require_queue(self, queue: str) -> None:
        """A job for a queue nobody serves or declared waits for ever: refuse it. A set
        lookup once the registry's watch runs (naqd/client/registry.py)."""
        if self.check_queues:
            await self._registry().require(queue)

    async def _submit(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Options,
    ) -> Job[Any]:
        """Every single enqueue ends here: shape the message (messages.shape), check what
        needs the server (a priority level, delayed-job support), take the unique lock,
        publish until the PubAck."""
        msg = self.shape(task, args, kwargs, options)
        if options.run_at is not None:
            await self._require_schedules()
        await self._require_queue(msg.queue)
        await self._require_priority(msg.queue, options.priority)
        lock = None
        if msg.unique is not None:
            spec = msg.unique
            if spec.mode in DELAYED_MODES:
                return await self._submit_waiting(task, args, kwargs, options, msg, spec)
            delay = options.run_at.timestamp() - time.time() if options.run_at else 0.0
            got = await claim(self._js, spec.key, msg.job_id, mode=spec.mode,
                              window=spec.window, queue=msg.queue, delay=delay,
                              finished=self._has_ended)  # fmt: skip
            if not got.created:
                return Job(self, got.job_id, created=False)
            lock = lock_key(spec.key)
        await self._send(msg, lock, msg.job_id)
        return Job(self, msg.job_id)

    async def _send(self, msg: Message, lock: str | None, owner: str) -> None:
        """Publish a shaped message with the middleware's enqueue hooks around it. A
        message that was not stored frees its unique key at once, not after its TTL."""
        hooks, message = self.hooks, None
        if hooks is not None:  # the middleware's before_enqueue may add headers
            message = EnqueueMessage(msg.job_id, msg.task, msg.queue, msg.headers)
            await hooks.enqueue(message)
        try:
            await self._publish(msg.subject, msg.payload, msg.headers)
        except BaseException as exc:
            if lock is not None:  # not stored: do not block the key until the TTL
                with contextlib.suppress(Exception):
                    await release_unique(self._js, lock, owner)
            if hooks is not None:
                await hooks.call("after_enqueue", hooks.after_enqueue, message, exc)
            raise
        if hooks is not None:
            await hooks.call("after_enqueue", hooks.after_enqueue, message, None)

    async def _submit_waiting(
        self,
        task: str | Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: Options,
        first: Message,
        spec: UniqueSpec,
    ) -> Job[Any]:
        """A debounced job ("debounce", "latest"): a delayed job that a later enqueue
        with its key replaces while it waits (naqd/client/unique.py). `first` is the
        message as shaped to run now: its id is the new job's, if one is made."""
        await self._require_schedules()
        got = await claim(self._js, spec.key, first.job_id, mode=spec.mode,
                          window=spec.window, queue=first.queue,
                          finished=self._has_ended)  # fmt: skip
        if got.run_at is None or got.holder_id is None:  # claim() sets both for these modes
            raise RuntimeError(f"unique_mode={spec.mode!r}: no start time was claimed")
        waiting = options.replace(
            job_id=got.job_id, run_at=datetime.fromtimestamp(got.run_at, UTC),
            unique_key=None, unique_for=None, unique_mode=None,
        )  # fmt: skip
        msg = self.shape(task, args, kwargs, waiting)
        msg.headers[HDR_MSG_ID] = got.holder_id  # a replacement must not be deduplicated
        await self._send(msg, lock_key(spec.key) if got.created else None, got.job_id)
        return Job(self, got.job_id, created=got.created)

    async def _require_priority(self, queue: str, priority: str | None) -> None:
        """A job on a level no worker consumes would wait for ever: refuse it clearly.
        Checked once per (queue, level) and client."""
        if priority is None or priority == DEFAULT_PRIORITY:
            return
        known = self._levels_ok
        if (queue, priority) in known:
            return
        try:
            await self._js.consumer_info(JOBS_STREAM, priority_consumer_name(queue, priority))
        except NotFoundError:
            raise ValueError(
                f"queue {queue!r} has no priority level {priority!r} (set "
                f"queues.{queue}.priorities in naq.yaml and start a worker)"
            ) from None
        known.add((queue, priority))

    async def _require_schedules(self) -> None:
        if not getattr(self, "_schedules_ok", False):
            info = await self._js.account_info()
            require_schedules(getattr(getattr(info, "api", None), "level", 0) or 0)
            self._schedules_ok = True

    async def delayed(self) -> list[DelayedJob]:
        """Pending delayed jobs, soonest first."""
        info = await self._js.stream_info(
            JOBS_STREAM, subjects_filter=under(DELAYED_SUBJECT_PREFIX)
        )
        found = []
        for subject in info.state.subjects or {}:
            try:
                msg = await self._js.get_msg(JOBS_STREAM, subject=subject)
            except Exception:
                continue  # fired meanwhile
            found.append(DelayedJob.from_holder(subject, msg.headers or {}, msg.data or b""))
        return sorted(found, key=lambda d: d.run_at)

    @overload
    async def enqueue_many(
        self, task: Task[P, R], calls: Iterable[Sequence[Any]], /
    ) -> list[Job[R]]: ...

    @overload
    async def enqueue_many(
        self,
        task: Untyped,
        calls: Iterable[Sequence[Any]],
        /,
        *,
        queue: str | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        result_ttl: float | None = None,
        priority: str | None = None,
    ) -> list[Job[Any]]: ...

    async def enqueue_many(
        self, task: Any, calls: Iterable[Sequence[Any]], /, **options: Any
    ) -> list[Job[Any]]:
        """Enqueue one job per argument tuple, pipelined: publishes go out without waiting
        for each PubAck (one inbox for all of them, naqd/transport/streamwriter.py), then all acks
        are awaited; any publish that failed or went unanswered within
        `publish_deadline` is retried, awaited, with its same Nats-Msg-Id."""
        rows = [tuple(args) for args in calls]
        if isinstance(task, Task):
            if options:
                raise TypeError("a task object's options go through task.using(...)")
            opts = task.enqueue_options()
            for args in rows:
                task.check_arguments(args, {})
            task = task.name
        else:
            unknown = set(options) - MANY_OPTIONS
            if unknown:
                raise TypeError(
                    f"enqueue_many got unexpected option(s) {', '.join(sorted(unknown))}"
                )
            opts = Options.of(options)
        msgs = self.shape_many(task, rows, opts)
        await self._require_queue(opts.queue or self.default_queue)
        await self._require_priority(opts.queue or self.default_queue, opts.priority)
        hooks, messages = self.hooks, []
        if hooks is not None and msgs:  # the middleware's before_enqueue, job by job
            name, to = task_name(task), opts.queue or self.default_queue  # checked by shape
            messages = [EnqueueMessage(h[HDR_MSG_ID], name, to, h) for _, _, h in msgs]
            for message in messages:
                await hooks.enqueue(message)
        stored = [False] * len(msgs)
        # One deadline for the call: the pipelined writes, then the retries of those that
        # failed, share publish_deadline (a retry per job with a deadline of its own made
        # a bulk enqueue during an outage take a deadline per job).
        until = time.monotonic() + self.publish_deadline
        try:
            submit, window = (await self._stream_writer()).submit, self.publish_deadline
            futures = [
                await submit(subject, payload, headers, window)
                for subject, payload, headers in msgs
            ]
            if futures:
                await asyncio.wait(futures)  # each settles by its PubAck or the window
            for i, fut in enumerate(futures):
                stored[i] = not fut.cancelled() and fut.exception() is None
            for i, (subject, payload, headers) in enumerate(msgs):
                if not stored[i]:
                    await self._publish(subject, payload, headers, until)
                    stored[i] = True
        except BaseException as exc:
            if hooks is not None:
                for message, ok in zip(messages, stored, strict=False):
                    error = None if ok else exc
                    await hooks.call("after_enqueue", hooks.after_enqueue, message, error)
            raise
        if hooks is not None:
            for message in messages:
                await hooks.call("after_enqueue", hooks.after_enqueue, message, None)
        return [Job(self, headers[HDR_MSG_ID]) for _, _, headers in msgs]

    async def _stream_writer(self) -> StreamWriter:
        """Every enqueue's write goes through one StreamWriter: the same PubAck checks as
        js.publish, without a request future, timer and NUID per job."""
        if self._writer is None:
            # Writes of one loop turn to NAQD_JOBS share an atomic batch: one fsync.
            writer = StreamWriter(self.nc, Batching(batch_stream, batch_headers))
            await writer.start()
            if self._writer is None:  # another enqueue may have started one meanwhile
                self._writer = writer
            else:
                await writer.stop()
        return self._writer

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str], until: float | None = None
    ) -> None:
        """Retry with the same Nats-Msg-Id: the stream's dedupe makes a retry safe. Gives
        up at `until` (monotonic; default publish_deadline from now), after one try at
        least."""
        deadline = time.monotonic() + self.publish_deadline if until is None else until
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                await (await self._stream_writer()).publish(
                    subject, payload, headers=headers, timeout=max(0.1, min(2.0, remaining))
                )
                return
            except _RETRYABLE as exc:
                if subject in self.denied:
                    raise EnqueueError(
                        f"NATS denied publishing to {subject}: this user may not enqueue "
                        "into that queue (see its permissions)"
                    ) from exc
                if isinstance(exc, NoStreamResponseError | NoRespondersError):
                    # Nothing took the write: no stream at all fails now, not in 10 s.
                    missing = await missing_streams(self._js)
                    if missing is not None:
                        raise missing from exc
                if time.monotonic() + delay >= deadline:
                    raise EnqueueError(
                        f"could not enqueue to {subject} within {self.publish_deadline}s "
                        f"({type(exc).__name__}); is naqd's stream created and NATS up?"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # -- results ------------------------------------------------------------------------
