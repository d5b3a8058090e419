"""The client's error contract (docs/client.md#errors): every public call, async and sync,
raises only NaqdError subclasses when NATS fails, whether the server is stopped before
the call or stopped (frozen, then killed) while the call waits for it."""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from naqd import (
    Client,
    ConnectError,
    EnqueueError,
    NaqdError,
    NotInitialized,
    SyncClient,
)
from naqd.client import link
from naqd.client.deadletters import DeadLetters
from naqd.client.explore import Explorer
from naqd.client.sync import SyncDeadLetters
from naqd.models import Config, NatsConfig
from naqd.protocol.deadletter import DeadLetter
from naqd.protocol.envelope import ErrorInfo
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
from naqd.serverbin import is_ready, nats_server_binary
from naqd.testing import NatsServer
from tests.natsserver import free_port, wait_until

LATER = datetime.now(UTC) + timedelta(hours=1)

# One entry per public call; the same lambda drives Client (a coroutine) and SyncClient.
CALLS: dict[str, Callable[[Any], Any]] = {
    "enqueue": lambda c: c.enqueue("tests.tasks:add", 1, 2),
    "enqueue unique_for": lambda c: c.enqueue("tests.tasks:add", 1, 2, unique_for=60),
    "enqueue_at": lambda c: c.enqueue_at(LATER, "tests.tasks:add", 1, 2),
    "enqueue_in": lambda c: c.enqueue_in(3600, "tests.tasks:add", 1, 2),
    "enqueue_many": lambda c: c.enqueue_many("tests.tasks:add", [(1, 2), (3, 4)]),
    "delayed": lambda c: c.delayed(),
    "cancel": lambda c: c.cancel("job-1"),
    "result": lambda c: c.result("job-1", timeout=60),
    "wait": lambda c: c.wait("job-1", timeout=60),
    "status": lambda c: c.status("job-1"),
    "record": lambda c: c.record("job-1"),
    "schedule": lambda c: c.schedule("nightly", "tests.tasks:add", 1, 2, every=60),
    "modify_schedule": lambda c: c.modify_schedule("nightly", every=120),
    "remove_schedule": lambda c: c.remove_schedule("nightly"),
    "pause_schedule": lambda c: c.pause_schedule("nightly"),
    "resume_schedule": lambda c: c.resume_schedule("nightly"),
    "get_schedule": lambda c: c.get_schedule("nightly"),
    "list_schedules": lambda c: c.list_schedules(),
    "pause_queue": lambda c: c.pause_queue("default"),
    "resume_queue": lambda c: c.resume_queue("default"),
    "queue_info": lambda c: c.queue_info("default"),
    "queues": lambda c: c.queues(),
    "declare_queue": lambda c: c.declare_queue("reports"),
    "trigger_schedule": lambda c: c.trigger_schedule("nightly"),
    "schedule_definition": lambda c: c.schedule_definition("nightly"),
}
# The dead-letter stream through `client.dead_letters`, on both clients.
DEAD_LETTERS: dict[str, Callable[[Any], Any]] = {
    "list": lambda d: d.list(),
    "get": lambda d: d.get("job-1"),
    "count": lambda d: d.count(),
    "counts": lambda d: d.counts(),
    "page": lambda d: d.page(),
    "requeue_id": lambda d: d.requeue_id("job-1"),
    "delete": lambda d: d.delete("job-1"),
    "purge": lambda d: d.purge("default"),
    "requeue": lambda d: d.requeue(
        DeadLetter("job-1", "default", "failed", ErrorInfo("E", "m"), "naqd.jobs.default", b"{}")
    ),
}
# The console's reads through `client.explorer` (async only; the console turns a
# NaqdError into its banner and a 503, docs/dashboard.md).
EXPLORER: dict[str, Callable[[Any], Any]] = {
    "overview": lambda e: e.overview(),
    "queues": lambda e: e.queues(),
    "workers": lambda e: e.workers(),
    "hosts": lambda e: e.hosts(),
    "list_jobs": lambda e: e.list_jobs(queue="default", state="queued"),
    "find_jobs": lambda e: e.find_jobs("0123abcd"),
    "job_detail": lambda e: e.job_detail("job-1"),
    "dead_letters": lambda e: e.dead_letters(),
    "dead_letter": lambda e: e.dead_letter("job-1"),
    "schedules": lambda e: e.schedules(),
    "schedule": lambda e: e.schedule("nightly"),
    "schedule_jobs": lambda e: e.schedule_jobs("nightly"),
    "queue": lambda e: e.queue("default"),
    "worker": lambda e: e.worker("host.1.worker"),
    "audit": lambda e: e.audit(),
    "record": lambda e: e.record("job-1"),
}
LIFECYCLE = {"connect", "close", "from_config"}  # tested on their own below
LOCAL = {"build", "build_many", "shape", "shape_many"}  # no I/O: build a message without sending it
OPTIONS = dict(publish_deadline=1.0, request_timeout=1.0, connect_deadline=5.0)


def running_calls() -> list[str]:
    """Every call the matrix makes: each on both clients, unless SyncClient lacks it."""
    both = [n for n in CALLS if hasattr(SyncClient, n.split()[0])]
    return [*CALLS, *both]


def public_calls(cls: type) -> set[str]:
    return {
        n
        for n in dir(cls)
        if not n.startswith("_")
        and callable(inspect.getattr_static(cls, n))
        and n not in LIFECYCLE | LOCAL
    }


def test_the_matrix_covers_every_public_call() -> None:
    covered = {name.split()[0] for name in CALLS}
    assert public_calls(Client) - covered == set()
    assert public_calls(SyncClient) - covered == set()
    assert {n for n in public_calls(DeadLetters) if n != "scan"} - set(DEAD_LETTERS) == set()
    assert public_calls(SyncDeadLetters) - set(DEAD_LETTERS) == set()
    # start/close are the explorer's lifecycle; search_args streams (its own tests).
    assert public_calls(Explorer) - {"start", "search_args"} - set(EXPLORER) == set()
    # And the blocking face has every call of the async one (docs/client.md says so).
    assert public_calls(SyncClient) == public_calls(Client)
    assert public_calls(SyncDeadLetters) == {n for n in public_calls(DeadLetters) if n != "scan"}


async def prepared(server: NatsServer) -> None:
    config = Config(nats=NatsConfig(servers=(server.url,)))
    async with Client(server.url) as admin:
        await ensure_resources(admin._js, config)
        await ensure_scheduler_resources(admin._js, config)


async def outcomes(aclient: Client, sclient: SyncClient) -> dict[str, BaseException | None]:
    """Run every call on both clients at once; what each raised (None: it returned)."""

    pool = ThreadPoolExecutor(max_workers=len(CALLS) + len(DEAD_LETTERS))

    async def one(call: Callable[[Any], Any], sync: bool) -> BaseException | None:
        try:
            if sync:  # a thread each: the default executor has only a few
                await asyncio.get_running_loop().run_in_executor(pool, call, sclient)
            else:
                await call(aclient)
        except BaseException as exc:
            return exc
        return None

    async def explore(call: Callable[[Any], Any]) -> BaseException | None:
        try:
            await call(aclient.explorer)
        except BaseException as exc:
            return exc
        return None

    async def dead(call: Callable[[Any], Any], sync: bool) -> BaseException | None:
        try:
            if sync:
                await asyncio.get_running_loop().run_in_executor(
                    pool, lambda: call(sclient.dead_letters)
                )
            else:
                await call(aclient.dead_letters)
        except BaseException as exc:
            return exc
        return None

    names = [(f"{name} ({kind})", call, kind == "sync") for name, call in CALLS.items()
             for kind in ("async", "sync")
             if kind == "async" or hasattr(SyncClient, name.split()[0])]  # fmt: skip
    dead_names = [(f"dead_letters.{name} ({kind})", call, kind == "sync")
                  for name, call in DEAD_LETTERS.items() for kind in ("async", "sync")]  # fmt: skip
    async with asyncio.timeout(60):  # each call gives up by its own deadlines, well before
        results = await asyncio.gather(
            *(one(call, sync) for _, call, sync in names),
            *(dead(call, sync) for _, call, sync in dead_names),
            *(explore(call) for call in EXPLORER.values()),
        )
    pool.shutdown()
    names += dead_names
    names += [(f"explorer.{name}", call, False) for name, call in EXPLORER.items()]
    return {name: exc for (name, _, _), exc in zip(names, results, strict=True)}


def assert_only_naqd_errors(found: dict[str, BaseException | None]) -> None:
    leaks = {n: repr(e) for n, e in found.items() if not isinstance(e, NaqdError)}
    assert not leaks, f"calls that did not raise a NaqdError: {leaks}"


async def test_every_call_raises_a_naqd_error_when_the_server_is_stopped(tmp_path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        await prepared(server)
        aclient = await Client(server.url, **OPTIONS).connect()
        sclient = SyncClient(server.url, **OPTIONS).connect()
        server.stop()
        found = await outcomes(aclient, sclient)
        assert_only_naqd_errors(found)
        assert isinstance(found["enqueue (async)"], EnqueueError)
        # Every enqueue says the job was not stored, whichever step NATS failed.
        for name, exc in found.items():
            assert not name.startswith("enqueue") or isinstance(exc, EnqueueError), (name, exc)
        await aclient.close()  # never raises, server down
        sclient.close()
    finally:
        server.stop()


async def test_every_call_raises_a_naqd_error_when_the_server_dies_mid_call(tmp_path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        await prepared(server)
        aclient = await Client(server.url, **OPTIONS).connect()
        sclient = SyncClient(server.url, **OPTIONS).connect()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # every request now waits for an answer
        before = aclient.nc.stats["out_msgs"] + sclient._client.nc.stats["out_msgs"]
        running = asyncio.create_task(outcomes(aclient, sclient))

        def sent() -> int:
            return aclient.nc.stats["out_msgs"] + sclient._client.nc.stats["out_msgs"] - before

        async with asyncio.timeout(10):
            while sent() < 2 * (len(CALLS) + len(DEAD_LETTERS)):  # each call's first request
                await asyncio.sleep(0.01)
        assert not running.done()  # so the server dies mid-call
        server.proc.send_signal(signal.SIGKILL)
        assert_only_naqd_errors(await running)
        await aclient.close()
        sclient.close()
    finally:
        server.stop()


@pytest.mark.parametrize("server", ["no naqd streams", "no JetStream"])
async def test_every_call_answers_or_raises_a_naqd_error_without_naqd_resources(
    server: str, tmp_path
) -> None:
    """A NATS where no daemon created naqd's streams and buckets, or without JetStream
    at all: a call may answer (an empty list), or raise a NaqdError, never nats-py's."""
    port = free_port()
    args = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port)]
    if server == "no naqd streams":
        args += ["-js", "-sd", str(tmp_path / "store")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: is_ready("127.0.0.1", port), 15, what="nats-server")
        url = f"nats://127.0.0.1:{port}"
        aclient = await Client(url, **OPTIONS).connect()
        sclient = SyncClient(url, **OPTIONS).connect()
        found = await outcomes(aclient, sclient)
        leaks = {n: repr(e) for n, e in found.items() if e is not None}
        leaks = {n: e for n, e in leaks.items() if not isinstance(found[n], NaqdError)}
        assert not leaks, f"calls that raised something else than a NaqdError: {leaks}"
        assert isinstance(found["enqueue (async)"], NotInitialized)
        assert isinstance(found["enqueue unique_for (sync)"], NotInitialized)
        await aclient.close()
        sclient.close()
    finally:
        proc.terminate()
        proc.wait(10)


async def test_connect_to_no_server_is_a_connect_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectError):
        await Client(url, connect_deadline=1.0).connect()
    with pytest.raises(ConnectError):
        SyncClient(url, connect_deadline=1.0).connect()


async def test_a_call_before_connect_or_after_close_is_a_connect_error() -> None:
    client = Client("nats://127.0.0.1:1")
    with pytest.raises(ConnectError, match="not connected"):
        await client.status("job-1")
    with pytest.raises(ConnectError, match="not connected"):
        SyncClient("nats://127.0.0.1:1").status("job-1")


async def test_background_connect_fails_fast_until_nats_is_up(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="naqd.client")
    server = NatsServer(tmp_path / "nats")
    client = Client(server.url, background_connect=True, connect_deadline=1.0)
    async with asyncio.timeout(1):
        await client.connect()  # returns at once although nothing listens
    for call in (CALLS["enqueue"], CALLS["status"], CALLS["queues"]):
        async with asyncio.timeout(0.5):
            with pytest.raises(ConnectError, match="not connected to NATS"):
                await call(client)
    sync = SyncClient(server.url, background_connect=True).connect()
    with pytest.raises(ConnectError, match="not connected to NATS"):
        sync.status("job-1")
    sync.close()
    server.start()
    try:
        await prepared(server)
        async with asyncio.timeout(15):
            while True:
                try:
                    job = await client.enqueue("tests.tasks:add", 1, 2)
                    break
                except ConnectError:
                    await asyncio.sleep(0.05)
        assert await client.status(job.id) == "queued"
        await client.close()
        assert any("connected to NATS" in r.getMessage() for r in caplog.records)
    finally:
        server.stop()


async def test_close_never_raises_and_logs_once_when_nats_is_gone(
    tmp_path, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(link, "CLOSE_WITHIN", 0.5)  # how long a drain may hang
    server = NatsServer(tmp_path / "nats").start()
    await prepared(server)
    client = await Client(server.url, **OPTIONS).connect()
    await client.enqueue("tests.tasks:add", 1, 2)  # the client has its writer to stop too
    server.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]  # a drain hangs
    caplog.clear()
    caplog.set_level(logging.INFO, logger="naqd.client")
    try:
        # Bounded by CLOSE_WITHIN per step, not by nats-py giving up its drain (that took
        # 10 s against a hung server: a web app's shutdown waited for it).
        async with asyncio.timeout(5), client:  # __aexit__ is close
            pass
    finally:
        server.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        server.stop()
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 1


async def test_an_outage_is_logged_once_not_per_reconnect_attempt(tmp_path, caplog) -> None:
    server = NatsServer(tmp_path / "nats").start()
    client = await Client(
        server.url, connect_options={"reconnect_time_wait": 0.05}, **OPTIONS
    ).connect()
    assert client._link is not None
    throttle = client._link.throttle
    caplog.set_level(logging.INFO, logger="naqd.client")
    server.stop()
    async with asyncio.timeout(15):  # let many reconnect attempts fail
        while sum(throttle.skipped.values()) < 10:
            await asyncio.sleep(0.02)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    errors = [w for w in warnings if "nats:" in w]
    assert len(errors) <= 2, warnings  # the first failure (per server error text), not ten
    assert sum("disconnected" in w for w in warnings) == 1
    server.start()
    try:
        async with asyncio.timeout(15):
            while not any("reconnected" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
        assert any("repeated error(s) not logged" in r.getMessage() for r in caplog.records)
        await client.close()
    finally:
        server.stop()
