"""Known queues on the client's side (docs/client.md#known-queues): one KV watch of
`naqd_queues` per client keeps the names in a set, so checking an enqueue's queue is a
set lookup, not a round trip. Only a miss asks the server (a daemon may have registered
the queue a moment ago), and then refuses it with QueueNotFound and a did-you-mean."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.errors import NoRespondersError
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    NoStreamResponseError,
    ServiceUnavailableError,
)

from naqd.client.errors import Unavailable
from naqd.client.faults import translate_nats
from naqd.client.queues import QueueNotFound
from naqd.client.readiness import NotInitialized
from naqd.protocol.known_queues import register_queues, unknown_queue_message
from naqd.protocol.names import QUEUES_BUCKET
from naqd.transport.kvwatch import close_watch, open_watch

if TYPE_CHECKING:
    from nats.js import JetStreamContext

log = logging.getLogger("naqd.client")

RETRY_MISSING = 30.0  # seconds before looking again for a bucket that did not exist
RETRY_UNREADABLE = 2.0  # seconds the check is skipped after NATS did not answer it
_GONE = ("DEL", "PURGE")


class KnownQueues:
    def __init__(
        self, js: JetStreamContext, request_timeout: float, connected: Callable[[], bool]
    ) -> None:
        self.js = js
        self.connected = connected
        self.request_timeout = request_timeout
        self.names: set[str] = set()
        self._kv: Any = None
        self._watcher: Any = None
        self._follower: asyncio.Task[None] | None = None
        self._opening: asyncio.Lock = asyncio.Lock()
        self._missing_until = 0.0  # no registry bucket (a daemon older than it): no check

    async def require(self, queue: str) -> None:
        """Return if `queue` is known, else raise QueueNotFound. While NATS does not
        answer, the check is skipped (it guards against typos, not intruders): the
        publish then rides out the outage within its deadline, as it always has."""
        if queue in self.names:
            return
        if not self.connected():
            return
        try:
            if not await self._open() or queue in self.names:
                return
            await self._kv.get(queue)  # a miss: the watch may not have told us yet
        except KeyNotFoundError:
            raise QueueNotFound(unknown_queue_message(queue, self.names)) from None
        except Exception as exc:
            if not isinstance(translate_nats(exc), Unavailable):
                raise
            log.debug("naqd client: known queues unreadable (%s); %r not checked", exc, queue)
            return
        self.names.add(queue)

    async def all(self) -> list[str]:
        """Every known queue name (none while the registry cannot be read)."""
        try:
            await self._open()
        except Exception as exc:
            if not isinstance(translate_nats(exc), Unavailable):
                raise
        return sorted(self.names)

    async def declare(self, queue: str) -> None:
        try:
            await register_queues(self.js, [queue], "client")
        except (NoRespondersError, NoStreamResponseError):
            raise NotInitialized(
                f"the {QUEUES_BUCKET} bucket does not exist yet: start a naqd daemon once, "
                "or run `naqd init --config naq.yaml`"
            ) from None
        self.names.add(queue)

    async def _open(self) -> bool:
        """Start the watch and read its initial values; False while there is no bucket."""
        if self._watcher is not None:
            return True
        if time.monotonic() < self._missing_until:
            return False
        async with self._opening:
            if self._watcher is not None:
                return True
            if time.monotonic() < self._missing_until:  # the call before us just failed
                return False
            try:
                kv = await self.js.key_value(QUEUES_BUCKET)
            except (BucketNotFoundError, NoRespondersError, ServiceUnavailableError):
                # No registry (a daemon older than it), or no JetStream: nothing to
                # check against; the publish says what is missing.
                self._missing_until = time.monotonic() + RETRY_MISSING
                return False
            except Exception as exc:
                # NATS does not answer: the enqueues waiting on this lock skip the check
                # for a moment instead of each waiting out a request timeout in turn.
                if isinstance(translate_nats(exc), Unavailable):
                    self._missing_until = time.monotonic() + RETRY_UNREADABLE
                raise
            watcher = await open_watch(kv, ">")
            try:
                while (entry := await watcher.updates(self.request_timeout)) is not None:
                    self._apply(entry)
            except BaseException as exc:
                await close_watch(watcher)
                if isinstance(exc, Exception) and isinstance(translate_nats(exc), Unavailable):
                    self._missing_until = time.monotonic() + RETRY_UNREADABLE
                raise
            self._kv, self._watcher = kv, watcher
            self._follower = asyncio.get_running_loop().create_task(self._follow(watcher))
            return True

    async def _follow(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is not None:
                self._apply(entry)

    def _apply(self, entry: Any) -> None:
        if entry.operation in _GONE:
            self.names.discard(entry.key)
        else:
            self.names.add(entry.key)

    async def stop(self) -> None:
        """Never raises."""
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(BaseException):
                await follower
        watcher, self._watcher = self._watcher, None
        if watcher is None:
            return
        if self.connected():
            await close_watch(watcher)  # deletes its consumer at once
        else:  # NATS is away: the server drops the consumer after its inactive threshold
            with contextlib.suppress(Exception):
                await watcher.stop()
