"""KV watches against a real nats-server leave no consumer behind."""

from __future__ import annotations

import asyncio

import nats
import pytest

from naqd.transport.kvwatch import WATCH_INACTIVE, close_watch, open_watch


async def test_a_closed_watch_deletes_its_consumer_and_a_live_one_expires_soon(
    nats_server,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="watched")
        await kv.put("a.b", b"1")
        watcher = await open_watch(kv, ">")
        assert (await watcher.updates(timeout=5)).key == "a.b"
        [info] = await js.consumers_info("KV_watched")
        assert info.config.inactive_threshold == WATCH_INACTIVE  # not nats-py's 300 s
        await close_watch(watcher)
        assert await js.consumers_info("KV_watched") == []
    finally:
        await nc.close()


async def test_a_watch_cancelled_while_it_opens_leaves_no_consumer(nats_server) -> None:
    """A scheduler stopped just after its start cancels its watches while the server
    creates their consumers: the consumer made anyway must be deleted."""
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        kv = await js.create_key_value(bucket="watched")
        opening = asyncio.ensure_future(open_watch(kv, ">"))
        await asyncio.sleep(0)  # the consumer create request is on its way
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert await js.consumers_info("KV_watched") == []
    finally:
        await nc.close()
