"""KV watches against a real nats-server leave no consumer behind."""

from __future__ import annotations

import nats

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
