"""Known queues (docs/client.md#known-queues): an enqueue to a queue that no daemon serves
and nobody declared is refused with a did-you-mean, without a round trip per enqueue;
`declare_queue` and `check_queues=False` opt out; jobs on a queue nobody serves show up
in `client.queues()` and `naqd queues`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from naqd import Client, NotInitialized, QueueNotFound, SyncClient
from naqd.cli.ops import queues_table
from naqd.models import Config, NatsConfig, QueueConfig
from naqd.observe.status import queues as status_queues
from naqd.protocol.known_queues import register_queues, unknown_queue_message
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources


async def prepare(url: str, *queues: str) -> None:
    """What a daemon does at boot: streams, consumers, and its queues registered."""
    config = Config(
        nats=NatsConfig(servers=(url,)),
        queues={q: QueueConfig(name=q) for q in queues},
    )
    async with Client(url, check_queues=False) as admin:
        await ensure_resources(admin._js, config)


async def test_a_typo_is_refused_with_a_did_you_mean(nats_server) -> None:
    await prepare(nats_server.url, "default", "reports", "emails")
    async with Client(nats_server.url) as client:
        with pytest.raises(QueueNotFound, match=r"'reprots'.*did you mean 'reports'\?"):
            await client.enqueue("tests.tasks:add", 1, 2, queue="reprots")
        with pytest.raises(QueueNotFound, match="did you mean 'reports'"):
            await client.enqueue_in(60, "tests.tasks:add", 1, 2, queue="reprots")
        with pytest.raises(QueueNotFound, match="did you mean 'emails'"):
            await client.enqueue_many("tests.tasks:add", [(1, 2)], queue="emials")
        assert (await client.enqueue("tests.tasks:add", 1, 2, queue="reports")).id
        assert not any(q.name in ("reprots", "emials") for q in await client.queues())
    with (
        SyncClient(nats_server.url) as sync,
        pytest.raises(QueueNotFound, match="did you mean 'reports'"),
    ):
        sync.enqueue("tests.tasks:add", 1, 2, queue="reprots")


async def test_a_code_schedule_on_a_typo_queue_is_refused(nats_server) -> None:
    await prepare(nats_server.url, "default", "reports")
    async with Client(nats_server.url) as client:
        with pytest.raises(QueueNotFound, match="did you mean 'reports'"):  # checked first
            await client.schedule("nightly", "tests.tasks:add", 1, 2, every=60, queue="reprots")
        await ensure_scheduler_resources(client._js, Config())
        await client.schedule("nightly", "tests.tasks:add", 1, 2, every=60, queue="reports")
        with pytest.raises(QueueNotFound, match="did you mean 'reports'"):
            await client.modify_schedule("nightly", queue="reprots")
        assert (await client.get_schedule("nightly")).queue == "reports"  # type: ignore[union-attr]


async def test_a_known_queue_costs_no_round_trip_per_enqueue(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url) as client:
        await client.enqueue("tests.tasks:add", 0, 0)  # opens the watch once
        before = client.nc.stats["out_msgs"]
        for n in range(20):
            await client.enqueue("tests.tasks:add", n, n)
        assert client.nc.stats["out_msgs"] - before == 20  # the 20 publishes, nothing else


async def test_a_queue_registered_later_is_known_at_once(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url) as client:
        await client.enqueue("tests.tasks:add", 1, 2)  # the watch runs
        await prepare(nats_server.url, "late")  # a daemon for "late" boots
        assert (await client.enqueue("tests.tasks:add", 1, 2, queue="late")).id


async def test_declare_queue_lets_every_client_enqueue_before_its_workers(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url) as first, Client(nats_server.url) as second:
        with pytest.raises(QueueNotFound):
            await second.enqueue("tests.tasks:add", 1, 2, queue="reports")
        await first.declare_queue("reports")
        async with asyncio.timeout(5):  # the other client's watch hears of it
            while "reports" not in second._registry().names:
                await asyncio.sleep(0.01)
        assert (await second.enqueue("tests.tasks:add", 1, 2, queue="reports")).id
        with pytest.raises(ValueError, match="invalid queue name"):
            await first.declare_queue("no spaces")


async def test_check_queues_false_accepts_any_queue_and_queues_shows_it(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url, check_queues=False) as client:
        await client.enqueue("tests.tasks:add", 1, 2, queue="later")
        await client.enqueue("tests.tasks:add", 3, 4, queue="later")
        await client.declare_queue("declared")
        by_name = {q.name: q for q in await client.queues()}
        assert by_name["later"].served is False and by_name["later"].waiting == 2
        assert by_name["declared"].served is False and by_name["declared"].waiting == 0
        assert by_name["default"].served is True


async def test_naqd_queues_lists_jobs_no_worker_serves(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url, check_queues=False) as client:
        await client.enqueue("tests.tasks:add", 1, 2, queue="reprots")
        await client.declare_queue("declared")
        rows = await status_queues(client._js, None, [], {"available": False, "counts": {}})
    assert {r["queue"]: r["unserved"] for r in rows} == {
        "declared": True,  # known, no worker yet
        "default": False,
        "reprots": True,  # not known, but jobs wait on it
    }
    line = next(x for x in queues_table(rows).splitlines() if x.startswith("reprots"))
    assert "no worker" in line and " 1 " in line
    naqd = str(Path(sys.executable).parent / "naqd")
    refused = subprocess.run(
        [
            naqd,
            "enqueue",
            "tests.tasks:add",
            "1",
            "2",
            "-q",
            "defualt",
            "--servers",
            nats_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 3 and "did you mean 'default'?" in refused.stderr


async def test_declaring_before_any_daemon_ran_says_so(nats_server) -> None:
    async with Client(nats_server.url) as client:
        with pytest.raises(NotInitialized, match="naqd_queues bucket does not exist"):
            await client.declare_queue("reports")


async def test_registering_twice_keeps_the_first_record(nats_server) -> None:
    await prepare(nats_server.url, "default")
    async with Client(nats_server.url) as client:
        kv = await client._js.key_value("naqd_queues")
        first = await kv.get("default")
        await register_queues(client._js, ["default"], "config")
        assert (await kv.get("default")).revision == first.revision


def test_the_message_names_close_queues_and_how_to_declare() -> None:
    text = unknown_queue_message("reprots", ["default", "reports", "emails"])
    assert "did you mean 'reports'?" in text and "declare_queue('reprots')" in text
    assert "did you mean" not in unknown_queue_message("zzz", ["default"])
    assert "known queues: none" in unknown_queue_message("x", [])
