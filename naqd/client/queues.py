"""Queue pause and inspection (docs/job-control.md): `naqd queues pause QUEUE` pauses the
queue's durable consumer on the server (nats-server >= 2.11), so every worker on every
host stops getting its jobs at once while producers keep enqueueing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nats.js.errors import NotFoundError

from naqd.client.errors import NaqdError
from naqd.protocol.envelope import validate_queue
from naqd.protocol.names import (
    JOBS_STREAM,
    JOBS_SUBJECT_PREFIX,
    consumer_name,
    job_subject,
    job_subject_queue,
    under,
)

if TYPE_CHECKING:
    from nats.js import JetStreamContext

PAUSE_API_LEVEL = 1  # nats-server 2.11
FOREVER = datetime(2999, 1, 1, tzinfo=UTC)  # "paused until resumed"


class QueueNotFound(NaqdError):
    """No naqd worker has created a consumer for that queue."""


@dataclass(frozen=True)
class QueueInfo:
    name: str
    waiting: int  # jobs stored and not yet delivered
    in_flight: int  # delivered, not yet acked (running, or held for a slot)
    paused: bool
    paused_until: datetime | None
    max_in_flight: int = 0  # the consumer's max_ack_pending: the cluster-wide cap
    # False: jobs wait on this queue's subject but no naqd worker ever created its
    # consumer (a typo, or workers still to come); they stay until one does.
    served: bool = True


def rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("pass a timezone-aware datetime")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        head = text.replace("Z", "+00:00")
        if "." in head:  # nanoseconds: keep microseconds
            main, rest = head.split(".", 1)
            frac, _, zone = rest.partition("+")
            head = f"{main}.{frac[:6]}+{zone}" if zone else f"{main}.{frac[:6]}"
        return datetime.fromisoformat(head)
    except ValueError:
        return None


class QueueMixin:
    """Mixed into Client; needs `_js`."""

    _js: JetStreamContext

    async def pause_queue(self, queue: str, until: datetime | None = None) -> None:
        """Workers everywhere stop taking jobs from `queue` (until `resume_queue`, or
        until `until`); jobs keep accumulating, running ones finish."""
        await self._require_pause()
        target = rfc3339(FOREVER if until is None else until)
        for name in await self._consumers_of(queue):  # every priority level
            await self._js.pause_consumer(JOBS_STREAM, name, target)

    async def resume_queue(self, queue: str) -> None:
        await self._require_pause()
        for name in await self._consumers_of(queue):
            await self._js.resume_consumer(JOBS_STREAM, name)

    async def _consumers_of(self, queue: str) -> list[str]:
        """`q-<queue>` and its priority levels' `q-<queue>~<level>`."""
        main = await self._consumer(queue)
        levels = [
            info.name
            for info in await self._js.consumers_info(JOBS_STREAM)
            if info.name.startswith(f"{main}~")
        ]
        return [main, *sorted(levels)]

    async def queue_info(self, queue: str) -> QueueInfo:
        name = await self._consumer(queue)
        info = await self._js.consumer_info(JOBS_STREAM, name)
        until = _parse(getattr(info.config, "pause_until", None))
        paused = bool(getattr(info, "paused", False)) or (
            until is not None and until > datetime.now(UTC)
        )
        return QueueInfo(
            name=queue,
            waiting=int(info.num_pending or 0),
            in_flight=int(info.num_ack_pending or 0),
            paused=paused,
            paused_until=until if paused else None,
            max_in_flight=int(info.config.max_ack_pending or 0),
        )

    async def queues(self) -> list[QueueInfo]:
        """Every queue some naqd worker has created, and (`served=False`) every known
        queue no worker has created yet and every queue subject holding jobs that no
        worker serves, by name."""
        names = []
        for info in await self._js.consumers_info(JOBS_STREAM):
            subject = info.config.filter_subject or ""
            queue = subject.removeprefix(job_subject(""))
            if info.name == consumer_name(queue):
                names.append(queue)
        found = {q: await self.queue_info(q) for q in names}
        for queue in await self._declared_queues():
            if queue not in found:
                found[queue] = QueueInfo(queue, 0, 0, False, None, served=False)
        for queue, waiting in (await self._unserved(set(names))).items():
            found[queue] = QueueInfo(queue, waiting, 0, False, None, served=False)
        return [found[q] for q in sorted(found)]

    async def _declared_queues(self) -> list[str]:  # Client's known queues
        return []

    async def _unserved(self, served: set[str]) -> dict[str, int]:
        """Jobs per queue subject that no queue consumer covers."""
        info = await self._js.stream_info(JOBS_STREAM, subjects_filter=under(JOBS_SUBJECT_PREFIX))
        counts: dict[str, int] = {}
        for subject, n in (info.state.subjects or {}).items():
            queue = job_subject_queue(subject)
            if queue is not None and queue not in served:
                counts[queue] = counts.get(queue, 0) + int(n)
        return counts

    async def _consumer(self, queue: str) -> str:
        validate_queue(queue)
        name = consumer_name(queue)
        try:
            await self._js.consumer_info(JOBS_STREAM, name)
        except NotFoundError:
            raise QueueNotFound(
                f"queue {queue!r} has no consumer: no naqd worker has started for it"
            ) from None
        return name

    async def _require_pause(self) -> None:
        info = await self._js.account_info()
        level = int(getattr(getattr(info, "api", None), "level", 0) or 0)
        if level < PAUSE_API_LEVEL:
            from naqd.client.delayed import ServerTooOld

            raise ServerTooOld(
                "pausing a queue needs nats-server 2.11 or newer (JetStream API level 1); "
                f"this server reports API level {level}"
            )
