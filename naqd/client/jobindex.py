"""An id index of the queued jobs, kept by a long-lived console (not by workers, not by
producers): job id -> its sequence in NAQD_JOBS. JetStream has no lookup by
Nats-Msg-Id, and a queued job has no result record yet, so without it finding one job
in a queue of 100,000 means reading the queue.

Built by reading the queue subjects once (batched direct gets), then kept current by
reading only what was stored since, every `interval`; entries of jobs that left the
stream are dropped when a lookup misses and by a periodic prune. Bounded: at most
`max_entries` ids (about 150 bytes each); past that the index says it is incomplete
and lookups fall back to a budgeted scan. Costs the server one batched read per
`interval` plus each enqueued job read once; costs workers nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from naqd.protocol.names import JOBS_STREAM, JOBS_SUBJECT_PREFIX, under
from naqd.transport.cancelling import cancel_until_done

log = logging.getLogger("naqd.console")

MAX_ENTRIES = 500_000
INTERVAL = 1.0
PRUNE_EVERY = 30.0


class JobIndex:
    def __init__(
        self, nc: NATS, *, max_entries: int = MAX_ENTRIES, interval: float = INTERVAL
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.max_entries = max_entries
        self.interval = interval
        self.ids: dict[str, int] = {}
        self.next_seq = 1
        self.caught_up = False  # read up to the stream's end at least once
        self.overflow = False  # more jobs than max_entries: lookups also scan
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pruned = time.monotonic()
        self._reading = asyncio.Lock()  # one refresh at a time (the round and lookups)

    @property
    def complete(self) -> bool:
        """Every queued job is in the index: a miss means the job is not queued."""
        return self.caught_up and not self.overflow

    def seq_of(self, job_id: str) -> int | None:
        return self.ids.get(job_id)

    async def lookup(self, job_id: str) -> int | None:
        """`seq_of`, but a miss first reads what was stored since the last round: a job
        enqueued a moment ago is found, not reported missing for up to `interval`."""
        seq = self.ids.get(job_id)
        if seq is None and self.complete:
            with contextlib.suppress(Exception):  # NATS away: the miss stands
                await self.refresh()
            seq = self.ids.get(job_id)
        return seq

    def forget(self, job_id: str) -> None:
        self.ids.pop(job_id, None)

    def prefix(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """Ids starting with `prefix` (a pass over the keys: ~10 ms per 100k)."""
        out = []
        for job_id, seq in self.ids.items():
            if job_id.startswith(prefix):
                out.append((job_id, seq))
                if len(out) >= limit:
                    break
        return out

    async def start(self) -> JobIndex:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        """Bounded: a plain `await` after `cancel()` never returned when a request's
        wait_for swallowed the cancel (Python 3.11): the console's stop hung, and its
        process outlived the daemon that started it."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done([task])

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: try again next round
                log.debug("job index refresh: %r", exc)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> int:
        """Read what was stored since the last refresh; returns how many jobs."""
        async with self._reading:
            return await self._refresh()

    async def _refresh(self) -> int:
        from naqd.client.batchget import scan
        from naqd.client.jobs import msg_job_id

        try:
            info = await self.js.stream_info(JOBS_STREAM)
        except NotFoundError:
            self.caught_up = True
            self.ready.set()
            return 0
        first, last = int(info.state.first_seq or 1), int(info.state.last_seq or 0)
        self.next_seq = max(self.next_seq, first)
        added = 0
        if last >= self.next_seq:
            messages = scan(self.nc, JOBS_STREAM, under(JOBS_SUBJECT_PREFIX), self.next_seq)
            try:
                async for msg in messages:
                    seq = int(msg.seq or 0)
                    self.next_seq = seq + 1
                    if len(self.ids) >= self.max_entries:
                        self.overflow = True
                        continue
                    self.ids[msg_job_id(msg)] = seq
                    added += 1
                    if seq >= last:
                        break
            finally:
                await messages.aclose()  # type: ignore[attr-defined]
        if time.monotonic() - self._pruned > PRUNE_EVERY:
            self._prune(first)
        self.caught_up = True
        self.ready.set()
        return added

    def _prune(self, first: int) -> None:
        """Drop jobs below the stream's first sequence: they were taken and acked."""
        self._pruned = time.monotonic()
        stale = [k for k, seq in self.ids.items() if seq < first]
        for k in stale:
            del self.ids[k]
        if len(self.ids) < self.max_entries:
            self.overflow = False

    def stats(self) -> dict[str, Any]:
        return {
            "entries": len(self.ids),
            "complete": self.complete,
            "next_seq": self.next_seq,
            "max_entries": self.max_entries,
        }
