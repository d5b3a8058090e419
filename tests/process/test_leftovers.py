"""What a daemon leaves on the NATS server: no ephemeral consumer outlives its child."""

from __future__ import annotations

import asyncio
import signal

import nats

from tests.natsserver import wait_until


def ephemeral_consumers(url: str) -> list[str]:
    """Consumers without a durable name, on every stream."""

    async def go() -> list[str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            found = []
            for stream in await js.streams_info():
                for c in await js.consumers_info(stream.config.name):
                    if not c.config.durable_name:
                        found.append(f"{stream.config.name}/{c.name}")
            return found
        finally:
            await nc.close()

    return asyncio.run(go())


def test_watch_consumers_are_deleted_not_left_for_five_minutes(daemon_factory, nats_server) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 2, processes: 2}, other: {processes: 1}}
        heartbeat: {interval: 1s}
        """,
        ready_workers=3,
    )
    daemon.wait_for_log("scheduler ready")
    # Running: each worker's initial cancel load closed its watch; only the scheduler's
    # two live watches (code schedules, paused schedules) remain.
    seen: list[list[str]] = []

    def settled() -> bool:
        seen.append(ephemeral_consumers(nats_server.url))
        return len(seen[-1]) <= 2

    try:
        wait_until(settled, 30, what="load watches deleted")
    except AssertionError:
        raise AssertionError(f"ephemeral consumers left: {seen[-1]}") from None
    daemon.send(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert ephemeral_consumers(nats_server.url) == []
