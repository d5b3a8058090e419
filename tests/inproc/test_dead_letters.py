"""Scenarios 5 and 6 with the worker in-process: retries with backoff end in the
dead-letter stream, `naqd dlq` requeues them; unreadable and unrunnable jobs go there at
once, and work goes on."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
from pathlib import Path

import nats
import pytest

from naqd import Client, DeadLetterNotFound, Job, JobFailed, SyncClient
from naqd.client.deadletters import DeadLetters
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until


def dlq_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), "dlq", *args, "--servers", url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_failing_job_retries_with_growing_gaps_then_dlq_and_requeue(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    daemon = worker_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues:
          default:
            concurrency: 2
            retries: 3
            backoff: {strategy: exponential, base: 400ms, jitter: 0}
        """,
    )
    url = nats_server.url
    attempts = tmp_path / "attempts"
    with SyncClient(url) as client:
        job = client.enqueue("tests.tasks:always_fail", str(tmp_path))
        rec = client.wait(job.id, timeout=30)
        assert rec.status == "failed" and rec.attempts == 4
        assert [e.type for e in rec.errors] == ["RuntimeError"] * 4
        times = [float(t) for t in attempts.read_text().split()]
        assert len(times) == 4
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # nak(delay) is enforced by the server: each gap is at least its backoff, and
        # the backoff doubles (0.4 s, 0.8 s, 1.6 s).
        for gap, delay in zip(gaps, (0.4, 0.8, 1.6), strict=True):
            assert gap >= delay * 0.95, gaps
        assert gaps[0] < gaps[2]
        assert "redelivered" not in daemon.log  # naqd's own retries are not losses

        listing = dlq_cli(url, "list", "default")
        assert listing.returncode == 0, listing.stderr
        assert job.id in listing.stdout and "failed" in listing.stdout
        shown = dlq_cli(url, "show", job.id, "--json")
        entry = json.loads(shown.stdout)
        assert entry["reason"] == "failed" and entry["attempts"] == 4
        assert len(entry["errors"]) == 4
        assert "raise RuntimeError" in entry["errors"][0]["traceback"]
        assert json.loads(entry["payload"])["task"] == "tests.tasks:always_fail"
        # Without --json, for people: the traceback as its lines, not one escaped string.
        text = dlq_cli(url, "show", job.id).stdout
        assert "reason:    failed" in text and "--- attempt 4 of 4: RuntimeError" in text
        assert "\n    raise RuntimeError" in text and "\\n" not in text.split("--- payload")[0]

        requeued = dlq_cli(url, "requeue", job.id)
        assert requeued.returncode == 0, requeued.stderr
        # It runs again: four more attempts, then back in the dead-letter stream.
        wait_until(lambda: len(attempts.read_text().split()) == 8, 30, what="requeued runs")
        wait_until(lambda: client.status(job.id) == "failed", 10, what="failed again")
        again = json.loads(dlq_cli(url, "show", job.id, "--json").stdout)
        assert again["attempts"] == 4 and again["seq"] > entry["seq"]

        purged = dlq_cli(url, "purge", "default", "--yes")
        assert "purged 1" in purged.stdout
        assert "no dead letters" in dlq_cli(url, "list").stdout


async def test_bad_messages_are_dead_lettered_and_the_worker_goes_on(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    worker_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {concurrency: 4, retries: 3}}
        """,
    )
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await js.publish("naqd.jobs.default", b"\x00\xffnot a job at all")
        v99 = {"v": 99, "id": "from-the-future", "task": "tests.tasks:add", "queue": "default"}
        await js.publish(
            "naqd.jobs.default", json.dumps(v99).encode(), headers={"Nats-Msg-Id": "future-1"}
        )
        async with Client(nats_server.url) as client:
            unknown = await client.enqueue("tests.tasks:no_such_task", 1)
            # This client binds the arguments of a task it has loaded (TypeError at
            # enqueue); a producer without the code sends the misfit anyway.
            with pytest.raises(TypeError, match="too many positional"):
                await client.enqueue("tests.tasks:add", 1, 2, 3)
            subject, payload, headers = client.build("tests.tasks:add", (1, 2, 3), {})
            await js.publish(subject, payload, headers=headers)
            misfit = Job(client, headers["Nats-Msg-Id"])
            exits = [
                await client.enqueue(f"tests.tasks:{name}", retries=0)
                for name in ("exit_now", "async_exit_now")
            ]
            ok = await client.enqueue("tests.tasks:add", 20, 22)
            assert await ok.result(timeout=20) == 42
            for job, kind in ((unknown, "TaskNotFound"), (misfit, "BadArguments")):
                try:
                    await job.result(timeout=20)
                except JobFailed as exc:
                    assert exc.error_type == kind
                    rec = await client.record(job.id)
                    assert rec is not None and rec.attempts == 1  # never retried
                else:
                    raise AssertionError(f"{job} should have failed")
            for job in exits:  # sys.exit() in a task fails the job, not the worker
                rec = await client.wait(job.id, timeout=20)
                assert rec.status == "failed" and rec.error is not None
                assert rec.error.type == "SystemExit"
        dl = DeadLetters(nc)
        by_reason: dict[str, list] = {}

        async def four() -> bool:
            by_reason.clear()
            for e in await dl.list("default"):
                by_reason.setdefault(e.reason, []).append(e)
            return sum(map(len, by_reason.values())) == 6

        deadline = asyncio.get_running_loop().time() + 20
        while not await four():
            assert asyncio.get_running_loop().time() < deadline, by_reason
            await asyncio.sleep(0.1)
        unreadable = sorted(by_reason["unreadable"], key=lambda e: e.stream_seq)
        assert unreadable[0].id.startswith("seq-")
        assert unreadable[0].payload == b"\x00\xffnot a job at all"
        assert "cannot decode" in unreadable[0].error.message
        # Filed under the envelope's readable id, not the (differing) Nats-Msg-Id.
        assert unreadable[1].id == "from-the-future"
        assert unreadable[1].task == "tests.tasks:add"
        assert "unsupported envelope version 99" in unreadable[1].error.message
        async with Client(nats_server.url) as client:
            rec = await client.record("from-the-future")  # its producer learns why
            assert rec is not None and rec.status == "failed"
            assert "unsupported envelope version" in rec.error.message
        assert len(by_reason["failed"]) == 2  # the two sys.exit() jobs
        [task] = by_reason["unknown_task"]
        assert task.id == unknown.id and "no_such_task" in task.error.message
        [args] = by_reason["bad_arguments"]
        assert args.id == misfit.id and "arguments do not fit" in args.error.message
        # The stream holds no leftovers: each bad message left it once dead-lettered.
        info = await js.consumer_info("NAQD_JOBS", "q-default")
        assert info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


def test_requeue_all_of_a_queue(worker_factory, nats_server, tmp_path: Path) -> None:
    worker_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {retries: 0}, other: {retries: 0}}
        """,
    )
    url = nats_server.url
    attempts = tmp_path / "attempts"

    def count() -> int:
        return len(attempts.read_text().split()) if attempts.exists() else 0

    with SyncClient(url) as client:
        jobs = [client.enqueue("tests.tasks:always_fail", str(tmp_path)) for _ in range(2)]
        other = client.enqueue("tests.tasks:always_fail", str(tmp_path), queue="other")
        for job in (*jobs, other):
            assert client.wait(job.id, timeout=30).status == "failed"
        out = dlq_cli(url, "requeue", "--all", "default")
        assert out.returncode == 0 and out.stdout.count("requeued") == 2, out.stderr
        wait_until(lambda: count() == 5, 30, what="the two requeued jobs ran")
        listing = dlq_cli(url, "list", "--json").stdout.splitlines()
        wait_until(lambda: len(dlq_cli(url, "list", "--json").stdout.splitlines()) == 3, 30)
    assert {json.loads(line)["queue"] for line in listing} <= {"default", "other"}
    assert "no dead letter 'nope'" in dlq_cli(url, "show", "nope").stderr


def test_a_sync_client_reads_and_acts_on_dead_letters(
    worker_factory, nats_server, tmp_path: Path
) -> None:
    """`SyncClient.dead_letters`: the blocking face of `client.dead_letters` (a Django
    view or a script has no loop of its own)."""
    worker_factory(
        """
        tasks: {imports: [tests.tasks]}
        queues: {default: {retries: 0}}
        """,
    )
    attempts = tmp_path / "attempts"
    with SyncClient(nats_server.url) as client:
        a, b = (client.enqueue("tests.tasks:always_fail", str(tmp_path)) for _ in range(2))
        for job in (a, b):
            assert client.wait(job.id, timeout=30).status == "failed"
        dl = client.dead_letters
        wait_until(lambda: dl.count("default") == 2, 10, what="two dead letters")
        assert {e.id for e in dl.list("default")} == {a.id, b.id}
        assert dl.counts() == {"default": 2}
        first = dl.page(queue="default", limit=1)
        assert len(first.items) == 1 and first.cursor
        rest = dl.page(queue="default", cursor=first.cursor)
        assert {first.items[0].id, *(r.id for r in rest.items)} == {a.id, b.id}
        entry = dl.get(a.id)
        assert entry is not None and entry.reason == "failed"

        assert dl.requeue_id(a.id).id == a.id
        wait_until(lambda: len(attempts.read_text().split()) == 3, 30, what="the requeued run")
        assert dl.delete(b.id).id == b.id
        assert dl.get(b.id) is None
        with pytest.raises(DeadLetterNotFound):
            dl.delete(b.id)
        wait_until(lambda: dl.get(a.id) is not None, 30, what="a dead again")
        assert dl.purge("default") == 1
        assert dl.list() == []
