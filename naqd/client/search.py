"""Search by a value inside the arguments (`user_id=42`): a stoppable scan of the
stored envelopes that yields each hit as it is found, and its progress. Behind
`Explorer.search_args`.

The scan reads in batched direct gets (naqd/client/batchget.py): no consumer (a
WorkQueue stream allows none beside the queue's own), a round trip per 256 messages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from nats.js.errors import NotFoundError

from naqd.protocol.names import DLQ_STREAM, JOBS_STREAM, dlq_filter

if TYPE_CHECKING:
    from naqd.client.explore import Explorer, JobRow, SearchEvent

PROGRESS_EVERY = 2_000  # messages between progress events


class Query:
    """`key=value` (a path `a.b=value`), or plain text. Pure."""

    def __init__(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise ValueError("empty search")
        self.text = text
        key, sep, value = text.partition("=")
        self.path = [p for p in key.strip().split(".") if p] if sep else []
        if sep and not self.path:
            raise ValueError(f"invalid search {text!r}: expected key=value or text")
        raw = value.strip()
        self.raw = raw
        try:
            self.value: Any = json.loads(raw)
            self.has_value = True
        except ValueError:
            self.value, self.has_value = raw, False

    def _equal(self, v: Any) -> bool:
        """JSON equality (42 == 42.0, but never True == 1), or the text of a scalar."""
        same_kind = isinstance(v, bool) == isinstance(self.value, bool)
        if self.has_value and same_kind and v == self.value:
            return True
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            return False
        return str(v) == self.raw

    def _walk(self, node: Any, path: list[str]) -> bool:
        """The path's value anywhere in `node` (any depth), compared."""
        if isinstance(node, dict):
            head = node.get(path[0], _MISSING) if path else _MISSING
            if head is not _MISSING:
                rest = path[1:]
                if not rest and self._equal(head):
                    return True
                if rest and self._walk_exact(head, rest):
                    return True
            return any(self._walk(v, path) for v in node.values() if isinstance(v, dict | list))
        if isinstance(node, list):
            return any(self._walk(v, path) for v in node if isinstance(v, dict | list))
        return False

    def _walk_exact(self, node: Any, path: list[str]) -> bool:
        for p in path:
            if not isinstance(node, dict) or p not in node:
                return False
            node = node[p]
        return self._equal(node)

    def matches(self, args: list[Any], kwargs: dict[str, Any]) -> bool:
        if self.path:
            return self._walk(kwargs, self.path) or self._walk(args, self.path)
        text = json.dumps([args, kwargs], default=str, ensure_ascii=False)
        return self.text in text


_MISSING = object()


class ArgSearch:
    """An async iterator of SearchEvent; `stop()` ends it (the next event is the last,
    with `stopped` set). Stops by itself after `limit` hits."""

    def __init__(
        self,
        ex: Explorer,
        query: str,
        *,
        queue: str | None = None,
        states: tuple[str, ...] = ("queued", "delayed", "waiting", "dead"),
        limit: int = 500,
    ) -> None:
        self.ex = ex
        self.query = Query(query)
        self.queue = queue
        self.states = states
        self.limit = limit
        self.scanned = 0
        self.total = 0
        self.hits = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def __aiter__(self) -> AsyncIterator[SearchEvent]:
        return self._translated()

    async def _translated(self) -> AsyncIterator[SearchEvent]:
        """Unavailable instead of a nats-py transport error (the console's 503)."""
        from naqd.client.errors import ConnectError, disconnected
        from naqd.client.faults import translate_nats

        if disconnected(self.ex):
            raise ConnectError("no connection to NATS (reconnecting): try again once it is back")
        try:
            async for event in self._run():
                yield event
        except Exception as exc:
            error = translate_nats(exc)
            if error is None:
                raise
            raise error from exc

    def _event(self, job: JobRow | None, done: bool = False) -> SearchEvent:
        from naqd.client.explore import SearchEvent

        return SearchEvent(job, self.scanned, self.total, self.hits, done, self._stop.is_set())

    def _sources(self) -> list[tuple[str, str]]:
        from naqd.client.jobs import stream_filter

        out = []
        for state in ("queued", "delayed", "waiting"):
            if state in self.states:
                out.append((JOBS_STREAM, stream_filter(state, self.queue)))
                if state == "queued" and self.queue:
                    out.append((JOBS_STREAM, stream_filter(state, self.queue) + ".>"))
        if "dead" in self.states:
            out.append((DLQ_STREAM, dlq_filter(self.queue)))
        return out

    async def _count(self, stream: str, filt: str) -> int:
        try:
            info = await self.ex.js.stream_info(stream, subjects_filter=filt)
        except NotFoundError:
            return 0
        return sum((info.state.subjects or {}).values())

    async def _run(self) -> AsyncIterator[SearchEvent]:
        sources = self._sources()
        counts = await asyncio.gather(*(self._count(s, f) for s, f in sources))
        self.total = sum(counts)
        yield self._event(None)
        for (stream, filt), n in zip(sources, counts, strict=True):
            if n == 0:
                continue
            async for event in self._scan(stream, filt, n):
                yield event
            if self._stop.is_set() or self.hits >= self.limit:
                break
        yield self._event(None, done=True)

    async def _scan(self, stream: str, filt: str, expected: int) -> AsyncIterator[SearchEvent]:
        """Payloads only (no headers: ~3x faster to read); the state of a queued hit is
        checked against its record (running or retrying once a worker took it)."""
        from naqd.client.batchget import scan_bodies

        seen = 0
        last_progress = time.monotonic()
        state = _state_of(filt) if stream != DLQ_STREAM else "dead"
        messages = scan_bodies(self.ex.client.nc, stream, filt)
        try:
            async for data in messages:
                if self._stop.is_set():
                    break
                seen += 1
                self.scanned += 1
                hit = self._hit(state, data)
                if hit is not None:
                    if state == "queued":
                        rec, _ = await self.ex.record(hit.id)
                        if rec is not None and rec.status in ("running", "retrying"):
                            hit.state = rec.status
                            hit.worker = rec.worker
                    self.hits += 1
                    yield self._event(hit)
                    if self.hits >= self.limit:
                        break
                if self.scanned % PROGRESS_EVERY == 0 or time.monotonic() - last_progress > 0.5:
                    last_progress = time.monotonic()
                    yield self._event(None)
                if seen >= expected:
                    break
        finally:
            await messages.aclose()  # type: ignore[attr-defined]

    def _hit(self, state: str, data: bytes) -> JobRow | None:
        from naqd.client.explore import JobRow

        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None  # pickled, or not a job
        if not isinstance(d, dict):
            return None
        if state == "dead":
            try:
                text = d.get("payload") if d.get("payload_encoding") == "text" else None
                env = json.loads(text) if isinstance(text, str) else {}
            except ValueError:
                return None
        else:
            env = d
        if not isinstance(env, dict):
            return None
        args, kwargs = env.get("args"), env.get("kwargs")
        if not self.query.matches(
            args if isinstance(args, list) else [], kwargs if isinstance(kwargs, dict) else {}
        ):
            return None
        if state == "dead":
            err: dict[str, Any] = d["error"] if isinstance(d.get("error"), dict) else {}
            return JobRow(
                id=str(d.get("id")), state="dead", queue=str(d.get("queue", "")),
                task=str(d.get("task", "")), at=d.get("dead_at"),
                attempts=int(d.get("attempts", 0) or 0),
                error=f"{err.get('type', '')}: {err.get('message', '')}",
            )  # fmt: skip
        at = env.get("enqueued_at")
        return JobRow(
            id=str(env.get("id", "")), state=state, queue=str(env.get("queue", "")),
            task=str(env.get("task", "")), at=at if isinstance(at, int | float) else None,
        )  # fmt: skip


def _state_of(filt: str) -> str:
    if filt.startswith("naqd.sched."):
        return "delayed"
    if filt.startswith("naqd.deps."):
        return "waiting"
    return "queued"
