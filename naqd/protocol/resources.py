"""Stream, consumer and bucket definitions, and the one I/O function that ensures them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from loguru import logger
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import (
    APIError,
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from naqd.protocol.audit import audit_stream_config
from naqd.protocol.known_queues import register_queues
from naqd.protocol.names import (
    ADVISORY_CONSUMER,
    ADVISORY_STREAM,
    CANCELS_BUCKET,
    DEFAULT_PRIORITY,
    DELAYED_SUBJECT_PREFIX,
    DEPENDENT_SUBJECT_PREFIX,
    DLQ_STREAM,
    DLQ_SUBJECT_PREFIX,
    HEARTBEATS_BUCKET,
    JOBS_STREAM,
    JOBS_SUBJECT_PREFIX,
    LEADER_BUCKET,
    QUEUES_BUCKET,
    RATE_STREAM,
    RATE_SUBJECT_PREFIX,
    RESULTS_BUCKET,
    SCHEDULES_API_LEVEL,
    SCHEDULES_BUCKET,
    UNIQUE_BUCKET,
    kv_stream,
    kv_subject,
    max_deliveries_advisories,
    priority_consumer_name,
    priority_subject,
    under,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from naqd.models import Config, QueueConfig

DUPLICATE_WINDOW = 120.0
# Caps jobs in flight per queue across the cluster; well above any local concurrency so
# the per-process slot accounting, not the server, is what limits a worker.
MAX_ACK_PENDING = 20_000


def jobs_stream_config(replicas: int, schedules: bool = True) -> StreamConfig:
    """`schedules` (server >= 2.12) lets delayed-job holders fire into the queues, and
    lets enqueues arrive as atomic batches (one fsync per batch under sync `always`)."""
    return StreamConfig(
        name=JOBS_STREAM,
        subjects=[
            under(JOBS_SUBJECT_PREFIX),
            under(DELAYED_SUBJECT_PREFIX),
            under(DEPENDENT_SUBJECT_PREFIX),
        ],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW,
        allow_msg_schedules=True if schedules else None,
        allow_atomic=True if schedules else None,
        allow_direct=True,  # the console's batched reads (naqd/client/batchget.py)
    )


def kv_stream_config(bucket: str, replicas: int, ttl: float | None = None) -> StreamConfig:
    """A one-value-per-key bucket. No limit markers: nats-py's get()/create() mishandle
    them, which would stop a lease from being taken over
    (docs/jetstream.md#nats-py-mishandles-kv-limit-markers)."""
    return StreamConfig(
        name=kv_stream(bucket),
        subjects=[kv_subject(bucket, ">")],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs_per_subject=1,
        max_age=ttl,
        num_replicas=replicas,
        allow_rollup_hdrs=True,
        deny_delete=True,
        allow_direct=True,
    )


async def api_level(js: JetStreamContext) -> int:
    """The server's JetStream API level (0 when it predates levels: < 2.11)."""
    info = await js.account_info()
    api = getattr(info, "api", None)
    return int(getattr(api, "level", 0) or 0)


def results_stream_config(replicas: int, ttl: float, atomic: bool = True) -> StreamConfig:
    """Results are written raw (not through nats-py's KV API) so they can carry Nats-TTL;
    records of jobs that finish together go as one atomic batch (server >= 2.12)."""
    cfg = kv_stream_config(RESULTS_BUCKET, replicas, ttl=ttl)
    return replace(
        cfg,
        allow_msg_ttl=True,
        duplicate_window=min(DUPLICATE_WINDOW, ttl),
        allow_atomic=True if atomic else None,
    )


def heartbeats_stream_config(replicas: int, interval: float) -> StreamConfig:
    """KV bucket of process heartbeats: a record lives 3 intervals after its last put, so
    a killed process disappears on its own. No limit markers
    (docs/jetstream.md#nats-py-mishandles-kv-limit-markers)."""
    ttl = max(1.0, 3 * interval)
    cfg = kv_stream_config(HEARTBEATS_BUCKET, replicas, ttl=ttl)
    return replace(cfg, storage=StorageType.MEMORY, duplicate_window=min(DUPLICATE_WINDOW, ttl))


def queue_consumer_config(queue: QueueConfig, level: str | None = None) -> ConsumerConfig:
    """The consumer of a queue, or of one of its priority levels."""
    return ConsumerConfig(
        durable_name=priority_consumer_name(queue.name, level or DEFAULT_PRIORITY),
        filter_subject=priority_subject(queue.name, level),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=queue.ack_wait,
        # A backstop above the retries (docs/delivery.md): a job that reaches it without an
        # outcome (its workers kept dying) is dead-lettered through the advisory stream.
        max_deliver=queue.deliveries,
        # `max_in_flight` caps a queue's unacked jobs across every host, server-side.
        max_ack_pending=queue.max_in_flight or MAX_ACK_PENDING,
        max_waiting=4096,
    )


def dlq_stream_config(replicas: int, max_age: float) -> StreamConfig:
    return StreamConfig(
        name=DLQ_STREAM,
        subjects=[under(DLQ_SUBJECT_PREFIX)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs_per_subject=1,
        max_age=max_age,
        num_replicas=replicas,
        duplicate_window=min(DUPLICATE_WINDOW, max_age),
        allow_direct=True,  # the console's batched reads (naqd/client/batchget.py)
    )


def advisory_stream_config(replicas: int, max_age: float) -> StreamConfig:
    return StreamConfig(
        name=ADVISORY_STREAM,
        subjects=[max_deliveries_advisories()],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age,
        num_replicas=replicas,
        duplicate_window=min(DUPLICATE_WINDOW, max_age),
    )


def advisory_consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=ADVISORY_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=30.0,
        max_deliver=-1,
        max_waiting=4096,
    )


# JetStream errors no retry can fix: 10074 "replicas > 1 not supported in non-clustered
# mode"; any 400 left after _ensure_stream tried an update (e.g. 10065, subjects overlap
# with another stream).
_CONFIG_ERRORS = frozenset({10074})


def refused_by_config(exc: APIError) -> bool:
    return exc.code == 400 or exc.err_code in _CONFIG_ERRORS


async def _ensure_stream(js: JetStreamContext, cfg: StreamConfig) -> None:
    try:
        await js.add_stream(cfg)
    except BadRequestError:
        # Exists with other settings (e.g. a changed results ttl): bring it in line.
        await js.update_stream(cfg)


OnRepair = Callable[[str, str], None]  # (consumer, what was wrong): log and count it
# "consumer not found", "consumer does not exist": a repair elsewhere deleted it meanwhile.
CONSUMER_GONE = frozenset({10014, 10149})
CONSUMER_RACE_ATTEMPTS = 5


def stale_consumer(stream_last_seq: int, delivered_seq: int, ack_floor_seq: int) -> str:
    """Why a consumer no longer matches its stream, or "" when it does. After a power
    cut a consumer's state file can survive newer than its stream's messages: its
    position then lies past the stream's last sequence, and it would skip every job
    stored from there on until the stream caught up (pure; table-tested). nats-server
    2.15 reconciles such a consumer itself when it restores the stream; it does not when
    the stream's own metadata was lost, naqd recreated the stream, and the consumer
    added to it found its old state file."""
    if ack_floor_seq > stream_last_seq:
        return f"ack floor {ack_floor_seq} past the stream's last sequence {stream_last_seq}"
    if delivered_seq > stream_last_seq:
        return f"delivered {delivered_seq} past the stream's last sequence {stream_last_seq}"
    return ""


async def _repair_if_stale(
    js: JetStreamContext, stream: str, cfg: ConsumerConfig, on_repair: OnRepair | None
) -> bool:
    """Rewind (or on older servers delete and recreate) a consumer whose position is
    past its stream's end (read in that order, so a concurrent publish can only make the
    stream look longer). On a
    WorkQueue stream the fresh consumer delivers every job still stored: nothing is
    skipped, and a job whose ack was lost runs again (at-least-once)."""
    name = cfg.durable_name or ""
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        await js.add_consumer(stream, cfg)  # another child is repairing it: ours now
        return False
    state = (await js.stream_info(stream)).state
    why = stale_consumer(
        state.last_seq, info.delivered.stream_seq or 0, info.ack_floor.stream_seq or 0
    )
    if not why:
        return False
    logger.warning(
        "consumer {} of stream {} no longer matches its stream ({}), as after a power cut "
        "that kept its state but lost stream data: rewinding it so new jobs run",
        name,
        stream,
        why,
    )
    try:
        # nats-server >= 2.14: rewind it in place (ADR-60). Children repairing at once
        # then each rewind the same consumer, where delete-and-create races.
        await js.reset_consumer(stream, name, seq=max(1, state.first_seq))
    except (APIError, NoRespondersError, NatsTimeoutError):
        if info.config.pause_until:
            cfg = replace(cfg, pause_until=info.config.pause_until)
        with contextlib.suppress(NotFoundError):  # another process repaired it first
            await js.delete_consumer(stream, name)
        await js.add_consumer(stream, cfg)
    if on_repair is not None:
        on_repair(name, why)
    return True


async def ensure_resources(
    js: JetStreamContext, config: Config, on_repair: OnRepair | None = None
) -> None:
    """Create or update what naqd needs, and repair consumers that no longer match
    their stream; idempotent, safe for many processes at once."""
    replicas = config.nats.replicas
    schedules = await api_level(js) >= SCHEDULES_API_LEVEL
    await _ensure_stream(js, jobs_stream_config(replicas, schedules))
    await _ensure_stream(js, results_stream_config(replicas, config.results.ttl, schedules))
    await _ensure_stream(js, heartbeats_stream_config(replicas, config.heartbeat.interval))
    max_age = config.dead_letters.max_age
    await _ensure_stream(js, dlq_stream_config(replicas, max_age))
    await _ensure_stream(js, advisory_stream_config(replicas, max_age))
    try:
        await js.consumer_info(ADVISORY_STREAM, ADVISORY_CONSUMER)
    except NotFoundError:
        await js.add_consumer(ADVISORY_STREAM, advisory_consumer_config())
    await _repair_if_stale(js, ADVISORY_STREAM, advisory_consumer_config(), on_repair)
    # Cancel records live as long as results: a job cancelled while queued stays skipped.
    await _ensure_stream(js, kv_stream_config(CANCELS_BUCKET, replicas, ttl=config.results.ttl))
    # Unique-job locks carry their own TTL (`unique_for`); the bucket's bounds them.
    unique = kv_stream_config(UNIQUE_BUCKET, replicas, ttl=config.results.ttl)
    unique.allow_msg_ttl = True
    await _ensure_stream(js, unique)
    for queue in config.queues.values():
        await ensure_consumer(js, queue, on_repair)
    await _ensure_stream(js, kv_stream_config(QUEUES_BUCKET, replicas))
    await register_queues(js, config.queues, "config")


async def ensure_or_refuse(
    js: JetStreamContext,
    config: Config,
    *more: Callable[[JetStreamContext, Config], Awaitable[None]],
    on_repair: OnRepair | None = None,
    settle: float = 30.0,
) -> bool:
    """Ensure naqd's resources (and `more`). False, logged, when NATS refuses them for
    good, a configuration error the child reports with exit 78; anything transient (no
    quorum yet, a timeout) is tried again for up to `settle` seconds (a stream just
    created on a cluster answers once it has elected its leader), then raises, so the
    child crashes and is restarted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settle
    delay = 0.1
    try:
        while True:
            try:
                await ensure_resources(js, config, on_repair)
                for ensure in more:
                    await ensure(js, config)
                return True
            except _NOT_READY as exc:
                if loop.time() + delay > deadline:
                    raise
                if delay == 0.1:
                    logger.info("NATS is not ready for naqd's streams yet ({}): retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
    except APIError as exc:
        if not refused_by_config(exc):
            raise
        logger.critical(
            "NATS refused naqd's streams: {} (error {}); check nats.replicas and "
            "nats.servers in {}",
            exc.description,
            exc.err_code,
            config.path,
        )
        return False


# What a stream or bucket answers while it has no leader yet (or the server is busy).
_NOT_READY = (
    NoStreamResponseError,
    NoRespondersError,
    NatsTimeoutError,
    asyncio.TimeoutError,
    ServiceUnavailableError,
)


async def ensure_consumer(
    js: JetStreamContext, queue: QueueConfig, on_repair: OnRepair | None = None
) -> None:
    for level in queue.priorities or (DEFAULT_PRIORITY,):
        cfg = queue_consumer_config(queue, level)
        for attempt in range(1, CONSUMER_RACE_ATTEMPTS + 1):
            try:
                await _ensure_one_consumer(js, replace(cfg))
                # Also after creating it: a consumer added to a stream that was recreated
                # picks up a state file left in the stream's directory.
                await _repair_if_stale(js, JOBS_STREAM, replace(cfg), on_repair)
                break
            except APIError as exc:
                # Another child deleted it to repair it between our calls: look again.
                if exc.err_code not in CONSUMER_GONE or attempt == CONSUMER_RACE_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)


async def _ensure_one_consumer(js: JetStreamContext, cfg: ConsumerConfig) -> None:
    try:
        info = await js.consumer_info(JOBS_STREAM, cfg.durable_name or "")
    except NotFoundError:
        info = None
    if (
        info is None
        or info.config.ack_wait != cfg.ack_wait
        or info.config.max_deliver != cfg.max_deliver
        or info.config.max_ack_pending != cfg.max_ack_pending
    ):
        if info is not None and info.config.pause_until:
            cfg.pause_until = info.config.pause_until  # an update must not resume a queue
        await js.add_consumer(JOBS_STREAM, cfg)


async def ensure_audit_stream(js: JetStreamContext, config: Config) -> None:
    """The audit trail with the configured retention. Not part of a worker's boot (a
    worker's NATS user need not reach it): `naqd init` and the console's boot apply it,
    and a client that appends before either created it with the defaults
    (naqd/client/audit.py)."""
    audit = config.audit
    cfg = audit_stream_config(config.nats.replicas, audit.max_age, audit.max_entries)
    await _ensure_stream(js, cfg)


def rate_stream_config(replicas: int) -> StreamConfig:
    """Counters (server >= 2.12) for cluster-wide rate limits: one subject per queue and
    time window, `Nats-Incr` returns the window's count (naqd/worker/ratelimit.py)."""
    return StreamConfig(
        name=RATE_STREAM,
        subjects=[under(RATE_SUBJECT_PREFIX)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_msgs_per_subject=1,
        max_age=60.0,
        num_replicas=replicas,
        allow_msg_counter=True,
    )


async def ensure_rate_stream(js: JetStreamContext, config: Config) -> bool:
    """False when the server is too old for counters."""
    if await api_level(js) < SCHEDULES_API_LEVEL:
        return False
    await _ensure_stream(js, rate_stream_config(config.nats.replicas))
    return True


async def ensure_scheduler_resources(js: JetStreamContext, config: Config) -> None:
    """The lease bucket (TTL = lease) and the schedule state bucket."""
    replicas = config.nats.replicas
    lease = config.scheduler.leader_election.lease
    await _ensure_stream(js, kv_stream_config(LEADER_BUCKET, replicas, ttl=lease))
    await _ensure_stream(js, kv_stream_config(SCHEDULES_BUCKET, replicas))
