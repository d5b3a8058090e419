"""Enqueueing where nothing can take the job fails at once, saying why, instead of
retrying for the whole publish deadline."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from naqd import Client
from naqd.client import NotInitialized
from naqd.supervisor.embedded import nats_server_binary
from tests.natsserver import _ready, free_port, wait_until


@pytest.fixture
def plain_nats() -> Iterator[str]:
    """A nats-server without JetStream."""
    port = free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _ready(port), 15, what="nats-server")
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_no_streams_yet(nats_server) -> None:
    async with Client(nats_server.url, publish_deadline=20) as client:
        t0 = time.monotonic()
        with pytest.raises(NotInitialized, match="naqd init --config"):
            await client.enqueue("tests.tasks:add", 1, 2)
        assert time.monotonic() - t0 < 2


async def test_no_jetstream(plain_nats: str) -> None:
    async with Client(plain_nats, publish_deadline=20) as client:
        t0 = time.monotonic()
        with pytest.raises(NotInitialized, match="JetStream is not enabled"):
            await client.enqueue("tests.tasks:add", 1, 2)
        assert time.monotonic() - t0 < 2


async def test_unique_job_before_any_daemon(nats_server) -> None:
    async with Client(nats_server.url) as client:
        with pytest.raises(NotInitialized, match="naqd init --config"):
            await client.enqueue("tests.tasks:add", 1, 2, unique_key="k")
