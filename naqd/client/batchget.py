"""Batched direct gets (nats-server >= 2.11): up to `batch` stored messages matching a
subject filter from a sequence on, in one request, answered as a burst of messages that
ends with an end-of-batch status. The console's scans read NAQD_JOBS and the dead-letter
stream this way: a WorkQueue stream allows no second consumer on a queue's subjects,
and one request per message would cost a round trip each.

Needs `allow_direct` on the stream (naqd/protocol/resources.py sets it); without it,
or on an older server, the scan falls back to one `get_msg` per message."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

BATCH = 256
TIMEOUT = 5.0


def _unanswered(nc: NATS) -> NoReturn:
    """No answer within TIMEOUT: a server that does not serve batched gets (the caller
    falls back to single ones), unless the connection itself went away meanwhile."""
    if not nc.is_connected:
        raise nats.errors.TimeoutError()
    raise NotImplementedError("no answer to a batched direct get")


def _raw(msg: Any) -> RawStreamMsg:
    from nats.js.manager import JetStreamManager

    return JetStreamManager._lift_msg_to_raw_msg(msg)


async def batch(
    nc: NATS, stream: str, seq: int, subject: str, size: int = BATCH
) -> tuple[list[RawStreamMsg], bool]:
    """(messages from `seq` on, whether the stream may hold more). Raises
    NotImplementedError when the server or stream does not serve batched direct gets."""
    out: list[Any] = []
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Any) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if done.done():
            return
        if status == "204":  # end of batch
            done.set_result(int(headers.get("Nats-Num-Pending", "0") or 0) > 0)
        elif status == "404":
            done.set_result(False)
        elif status or "Nats-Sequence" not in headers:
            done.set_exception(NotImplementedError(f"batched direct get refused ({status})"))
        else:
            out.append(msg)

    if not nc.is_connected:  # a request now would wait out TIMEOUT, then a fallback's
        raise nats.errors.ConnectionReconnectingError()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_msg)
    try:
        req = json.dumps({"seq": seq, "next_by_subj": subject, "batch": size}).encode()
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", req, reply=inbox)
        try:
            more = await asyncio.wait_for(done, TIMEOUT)
        except TimeoutError:
            _unanswered(nc)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return [_raw(m) for m in out], more


async def scan(
    nc: NATS, stream: str, subject: str, start: int = 1, size: int = BATCH
) -> AsyncIterator[RawStreamMsg]:
    """Every message matching `subject` from `start` on, oldest first."""
    seq = start
    js = nc.jetstream()
    batched = True
    while True:
        if batched:
            try:
                msgs, more = await batch(nc, stream, seq, subject, size)
            except NotImplementedError:
                batched = False
                continue
            for m in msgs:
                yield m
            if not msgs or not more:
                return
            seq = (msgs[-1].seq or seq) + 1
            continue
        try:
            m = await js.get_msg(stream, seq, subject=subject, next=True)
        except NotFoundError:
            return
        yield m
        seq = (m.seq or seq) + 1


async def fetch_range(nc: NATS, stream: str, subject: str, lo: int, hi: int) -> list[RawStreamMsg]:
    """The messages matching `subject` with sequences lo..hi, oldest first: one batched
    request (or one get per sequence where batches are not served)."""
    if hi < lo:
        return []
    try:
        msgs, _ = await batch(nc, stream, lo, subject, hi - lo + 1)
        return [m for m in msgs if (m.seq or 0) <= hi]
    except NotImplementedError:
        pass
    js = nc.jetstream()
    out = []
    seq = lo
    while seq <= hi:
        try:
            m = await js.get_msg(stream, seq, subject=subject, next=True)
        except NotFoundError:
            break
        if (m.seq or 0) > hi:
            break
        out.append(m)
        seq = (m.seq or seq) + 1
    return out


async def bodies(
    nc: NATS, stream: str, seq: int, subject: str, size: int = BATCH
) -> tuple[list[bytes], int | None]:
    """Only the payloads of up to `size` messages from `seq` on (`no_hdr`: the server
    sends no headers, which spares nats-py parsing them: ~3x faster), and the sequence
    to continue from (None at the end)."""
    out: list[bytes] = []
    done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def on_msg(msg: Any) -> None:
        headers = msg.headers
        if done.done():
            return
        if not headers:
            out.append(msg.data)
            return
        status = headers.get("Status")
        if status == "204":
            more = int(headers.get("Nats-Num-Pending", "0") or 0) > 0
            last = int(headers.get("Nats-Last-Sequence", "0") or 0)
            done.set_result(last + 1 if more and last else None)
        elif status == "404":
            done.set_result(None)
        else:
            done.set_exception(NotImplementedError(f"batched direct get refused ({status})"))

    if not nc.is_connected:  # a request now would wait out TIMEOUT, then a fallback's
        raise nats.errors.ConnectionReconnectingError()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_msg)
    try:
        req = {"seq": seq, "next_by_subj": subject, "batch": size, "no_hdr": True}
        await nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(req).encode(), reply=inbox)
        try:
            after = await asyncio.wait_for(done, TIMEOUT)
        except TimeoutError:
            _unanswered(nc)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out, after


async def scan_bodies(
    nc: NATS, stream: str, subject: str, start: int = 1, size: int = BATCH
) -> AsyncIterator[bytes]:
    """The payloads of every message matching `subject`, oldest first (see bodies);
    where batches are not served, read one by one."""
    seq: int | None = start
    while seq is not None:
        try:
            got, seq = await bodies(nc, stream, seq, subject, size)
        except NotImplementedError:
            async for m in scan(nc, stream, subject, seq or start, size):
                yield m.data or b""
            return
        for data in got:
            yield data
