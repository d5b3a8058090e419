"""The console's data and actions layer (naqd/client/explore.py, actions.py, feeds.py)
against a real nats-server, with the in-process worker where jobs must run: every read,
every action, their 404/409 answers, bulk dry runs and filters that match nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from naqd import Client
from naqd.client.actions import Actions, DeadLetterFilter
from naqd.client.errors import Conflict, DeadLetterNotFound, JobNotFound
from naqd.client.feeds import EventFeed
from naqd.client.queues import QueueNotFound
from naqd.client.schedules import ScheduleNotFound
from naqd.models import Config, NatsConfig, ScheduleConfig
from naqd.protocol.names import JOBS_STREAM
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
from naqd.protocol.schedule_state import ScheduleState
from naqd.testing import Worker
from tests.conftest import REPO, naqd_executable


async def until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def client(nats_server) -> AsyncIterator[Client]:
    async with Client(nats_server.url) as c:
        config = Config(nats=NatsConfig(servers=(nats_server.url,)))
        await ensure_resources(c._js, config)
        await ensure_scheduler_resources(c._js, config)
        yield c


def worker(url: str, **queue: object) -> Worker:
    return Worker(url, tasks=["tests.tasks"], queues={"default": {"retries": 0, **queue}})


async def test_queued_jobs_overview_listing_cursor_detail_and_id_search(client) -> None:
    jobs = [await client.enqueue("tests.tasks:add", i, 1, job_id=f"q-job-{i}") for i in range(5)]
    ex = client.explorer

    async def default_row():
        [row] = [q for q in (await ex.overview()).queues if q.name == "default"]
        return row if row.queued == 5 else None

    # A consumer's num_pending is counted by the server after it acknowledged the publish
    # (it once read 2 of 5 under load): the overview is eventually consistent.
    row = await until(default_row, what="5 queued in the overview")
    assert row.running == 0 and not row.paused and row.lag >= 0

    first = await ex.list_jobs(queue="default", state="queued", limit=2)
    assert [j.id for j in first.items] == ["q-job-0", "q-job-1"] and first.total == 5
    assert first.items[0].task == "tests.tasks:add"
    second = await ex.list_jobs(queue="default", state="queued", limit=2, cursor=first.cursor)
    assert [j.id for j in second.items] == ["q-job-2", "q-job-3"]
    third = await ex.list_jobs(queue="default", state="queued", limit=2, cursor=second.cursor)
    assert [j.id for j in third.items] == ["q-job-4"]
    none = await ex.list_jobs(state="queued", task="tests.tasks:nope")
    assert none.items == []

    detail = await ex.job_detail(jobs[3].id)
    assert detail.state == "queued" and detail.args == [3, 1] and detail.queue == "default"
    assert detail.envelope is not None and detail.stream_seq
    found = await ex.find_jobs("q-job-2")
    assert [(r.id, r.state) for r in found] == [("q-job-2", "queued")]
    page = await ex.list_jobs(q="q-job-4")
    assert [r.id for r in page.items] == ["q-job-4"]

    with pytest.raises(JobNotFound):
        await ex.job_detail("no-such-job")
    with pytest.raises(ValueError):
        await ex.job_detail("bad id!")
    with pytest.raises(ValueError):
        await ex.list_jobs(state="sleeping")
    with pytest.raises(ValueError):
        await ex.list_jobs(state="queued", cursor="r:12")


async def test_delayed_and_cancel_with_404_and_409(client) -> None:
    job = await client.enqueue_in(3600, "tests.tasks:add", 1, 2, job_id="later-1")
    ex, act = client.explorer, Actions(client, actor="alice", via="console")
    page = await ex.list_jobs(state="delayed")
    assert [(r.id, r.state) for r in page.items] == [("later-1", "delayed")]
    assert page.items[0].at and page.items[0].at > time.time() + 3000
    detail = await ex.job_detail(job.id)
    assert detail.state == "delayed" and detail.run_at and detail.args == [1, 2]
    [row] = [q for q in (await ex.overview()).queues if q.name == "default"]
    assert row.delayed == 1

    done = await act.cancel_job(job.id)
    assert done.ok and done.detail["was"] == "delayed"
    assert (await ex.job_detail(job.id)).state == "cancelled"
    with pytest.raises(Conflict):
        await act.cancel_job(job.id)
    with pytest.raises(JobNotFound):
        await act.cancel_job("never-was")
    audit = await act.audit.list(action="job.cancel")
    assert [(e.target, e.result, e.actor) for e in audit.items] == [
        ("never-was", "not_found", "alice"),
        ("later-1", "conflict", "alice"),
        ("later-1", "ok", "alice"),
    ]


async def test_dead_letters_filters_requeue_once_bulk_dry_run_delete(client, nats_server) -> None:
    ex, act = client.explorer, Actions(client, actor="bob", via="api")
    async with worker(nats_server.url, concurrency=1) as w:  # dies in order
        failing = [
            await client.enqueue("tests.tasks:fail", f"boom {i}", job_id=f"dead-{i}")
            for i in range(4)
        ]
        await client.enqueue("tests.tasks:add", 1, 1, job_id="fine-1")
        for j in [*failing, "fine-1"]:
            await client.wait(getattr(j, "id", j), timeout=10)
        await w.drain()

        page = await ex.dead_letters(limit=3)
        assert [d.id for d in page.items] == ["dead-3", "dead-2", "dead-1"]  # newest first
        assert page.total == 4 and page.cursor
        rest = await ex.dead_letters(limit=3, cursor=page.cursor)
        assert [d.id for d in rest.items] == ["dead-0"] and rest.cursor is None
        assert (await ex.dead_letters(error_type="ValueError", queue="default")).total == 4
        assert (await ex.dead_letters(error_type="KeyError")).items == []
        assert (await ex.dead_letters(task="tests.tasks:add")).items == []
        one = await ex.dead_letter("dead-2")
        assert one.error_type == "ValueError" and "raise ValueError" in one.traceback
        detail = await ex.job_detail("dead-2")
        assert detail.state == "dead" and detail.dead_letter is not None
        assert detail.args == ["boom 2"] and "raise ValueError" in detail.attempts[-1].traceback
        ov = await ex.overview()
        assert ov.dead_letters == 4
        assert (await ex.list_jobs(state="succeeded")).items[0].id == "fine-1"
        assert [r.id for r in (await ex.list_jobs(state="dead", limit=2)).items] == [
            "dead-3",
            "dead-2",
        ]

        # Two operators requeue the same entry at once: one copy, one clear refusal. The
        # queue is paused so the requeued job cannot die again (a new entry) meanwhile.
        await client.pause_queue("default")
        outcomes = await asyncio.gather(
            act.requeue_dead_letter("dead-0"),
            Actions(client, actor="carol").requeue_dead_letter("dead-0"),
            return_exceptions=True,
        )
        ok = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(ok) == 1 and len(refused) == 1, outcomes
        assert isinstance(refused[0], Conflict | DeadLetterNotFound)
        waiting = await ex.list_jobs(state="queued", queue="default")
        assert [j.id for j in waiting.items] == ["dead-0"]  # one copy
        await client.resume_queue("default")
        await until(lambda: _is_dead(ex, "dead-0"), what="dead-0 ran and died again")
        with pytest.raises(DeadLetterNotFound):
            await act.requeue_dead_letter("never-dead")

        empty = await act.requeue_dead_letters(DeadLetterFilter(task="tests.tasks:none"))
        assert empty.count == 0 and "nothing" in empty.message
        with pytest.raises(ValueError):
            await act.requeue_dead_letters(DeadLetterFilter())
        dry = await act.requeue_dead_letters(DeadLetterFilter(queue="default"), dry_run=True)
        assert dry.dry_run and dry.count == 4 and set(dry.ids) >= {"dead-1", "dead-2"}
        assert (await ex.dead_letters()).total == 4  # a dry run changes nothing

        gone = await act.delete_dead_letter("dead-1")
        assert gone.count == 1
        with pytest.raises(DeadLetterNotFound):
            await act.delete_dead_letter("dead-1")
        bulk = await act.requeue_dead_letters(DeadLetterFilter(error_type="ValueError"))
        assert bulk.count == 3 and not bulk.conflicts
        for job_id in ("dead-0", "dead-2", "dead-3"):
            await until(lambda j=job_id: _is_dead(ex, j), what=f"{job_id} dead again")
    results = {e.result for e in (await act.audit.list(action="dlq")).items}
    assert {"ok", "dry_run", "not_found"} <= results


async def _is_dead(ex, job_id: str) -> bool:
    try:
        await ex.dead_letter(job_id)
    except DeadLetterNotFound:
        return False
    return True


async def test_argument_search_streams_hits_and_progress_and_stops(client) -> None:
    for i in range(30):
        await client.enqueue("tests.tasks:echo_kwargs", user_id=i % 10, name=f"n{i}")
    await client.enqueue("tests.tasks:echo_kwargs", user={"id": 42}, job_id="nested")
    ex = client.explorer
    events = [e async for e in ex.search_args("user_id=4")]
    hits = [e.job for e in events if e.job]
    assert len(hits) == 3 and all(h.state == "queued" for h in hits)
    assert events[-1].done and events[-1].scanned == 31 and events[-1].total == 31
    nested = [e.job.id for e in [e async for e in ex.search_args("user.id=42")] if e.job]
    assert nested == ["nested"]
    text = [e async for e in ex.search_args("n17")]
    assert [e.job.id for e in text if e.job] and text[-1].hits == 1

    search = ex.search_args("name=n1")
    seen = []
    async for event in search:
        seen.append(event)
        if event.job:
            search.stop()
    assert seen[-1].done and seen[-1].stopped and seen[-1].hits == 1


async def test_schedules_yaml_published_code_trigger_pause(client) -> None:
    state = ScheduleState(client._js)
    await state.set_yaml_schedules(
        [ScheduleConfig(name="nightly", task="tests.tasks:add", cron="0 3 * * *", args=(1, 2))]
    )
    await state.set_yaml_names(["nightly"])
    await client.schedule("every-min", "tests.tasks:add", 3, 4, every=60)
    ex, act = client.explorer, Actions(client, actor="dave")
    rows = {r.name: r for r in await ex.schedules()}
    assert rows["nightly"].origin == "yaml" and rows["every-min"].origin == "code"
    assert rows["nightly"].next_run and rows["nightly"].trigger == "0 3 * * *"
    fired = await act.trigger_schedule("nightly")
    assert fired.ids[0].startswith("cron.nightly.manual.")
    detail = await ex.job_detail(fired.ids[0])
    assert detail.schedule == "nightly" and detail.args == [1, 2]
    await act.pause_schedule("nightly")
    assert {r.name: r.paused for r in await ex.schedules()}["nightly"]
    await act.resume_schedule("nightly")
    assert not {r.name: r.paused for r in await ex.schedules()}["nightly"]
    with pytest.raises(ScheduleNotFound):
        await act.trigger_schedule("nope")


async def test_queue_pause_resume_purge_and_unknown_queue(client) -> None:
    act = Actions(client, actor="erin")
    for i in range(3):
        await client.enqueue("tests.tasks:add", i, i)
    await act.pause_queue("default")
    assert (await client.queue_info("default")).paused
    await act.resume_queue("default")
    assert not (await client.queue_info("default")).paused
    purged = await act.purge_queue("default")
    assert purged.count == 3
    assert (await client.explorer.list_jobs(state="queued")).items == []
    with pytest.raises(QueueNotFound):
        await act.pause_queue("ghost")
    with pytest.raises(QueueNotFound):
        await act.purge_queue("ghost")
    listed = await act.audit.list(actor="erin")
    assert [e.action for e in listed.items][:3] == ["queue.purge", "queue.pause", "queue.purge"]


async def test_running_jobs_and_live_feed(client, nats_server, tmp_path) -> None:
    ex = client.explorer
    feed = EventFeed(client.nc, ("job", "dead_letter", "queue"))
    async with feed, worker(nats_server.url) as w:
        job = await client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        await until(lambda: _state(ex, job.id, "running"), what="running")
        running = await ex.list_jobs(state="running")
        assert job.id in [r.id for r in running.items] or running.items == []
        (tmp_path / "release").write_text("go")
        await client.wait(job.id, timeout=10)
        bad = await client.enqueue("tests.tasks:fail", "x")
        await client.wait(bad.id, timeout=10)
        await w.drain()
        kinds: set[tuple[str, str]] = set()
        deadline = time.monotonic() + 10
        while ("dead_letter", bad.id) not in kinds and time.monotonic() < deadline:
            event = await feed.next(1.0)
            if event:
                kinds.add((event.kind, event.key))
        assert ("job", job.id) in kinds and ("dead_letter", bad.id) in kinds
        await client.pause_queue("default")
        event = await feed.next(5.0)
        while event is not None and event.kind != "queue":
            event = await feed.next(5.0)
        assert event is not None and event.data == {"queue": "default", "paused": True}


async def _state(ex, job_id: str, state: str) -> bool:
    try:
        return (await ex.job_detail(job_id)).state == state
    except JobNotFound:
        return False


async def test_feed_is_bounded_and_says_resync(client) -> None:
    async with EventFeed(client.nc, ("job",), max_pending=5) as feed:
        for i in range(20):
            await client.nc.publish(f"naqd.done.j{i}", b'{"id": "j%d", "status": "succeeded"}' % i)
        await client.nc.flush()
        await until(lambda: _count(feed), what="dropped")
        first = await feed.next(1.0)
        assert first is not None and first.kind == "resync" and feed.dropped == 15
        rest = [await feed.next(0.2) for _ in range(6)]
        assert [e.key for e in rest if e] == [f"j{i}" for i in range(15, 20)]


async def _count(feed: EventFeed) -> bool:
    return feed.dropped >= 15


async def test_workers_overview_reads_heartbeats(client) -> None:
    import json

    kv = await client._js.key_value("naqd_heartbeats")
    record = {
        "host": "h1", "pid": 7, "role": "worker", "queues": ["default"], "concurrency": 4,
        "running": ["a", "b"], "done": 10, "failed": 1, "done_per_min": 6.0,
        "failed_per_min": 0.5, "memory_rss": 1 << 20, "recycles": 2, "extra": {},
    }  # fmt: skip
    await kv.put("h1.worker.7", json.dumps(record).encode())
    ov = await client.explorer.overview()
    [host] = ov.hosts
    [proc] = host.processes
    assert (proc.pid, proc.running, proc.memory_rss, proc.recycles) == (7, ["a", "b"], 1 << 20, 2)
    [row] = [q for q in ov.queues if q.name == "default"]
    assert row.processes == 1 and row.concurrency == 4 and row.done_per_min == 6.0
    assert JOBS_STREAM  # the jobs stream exists (the overview read it)


async def test_id_index_finds_queued_jobs_by_prefix_and_forgets_taken_ones(client) -> None:
    ex = client.explorer
    await ex.start(wait=5)
    try:
        assert ex.index is not None and ex.index.complete
        jobs = await client.enqueue_many("tests.tasks:add", [(i, i) for i in range(50)])
        await until(lambda: _indexed(ex, len(jobs)), what="index caught up")
        target = jobs[37].id
        found = await ex.find_jobs(target[:10])
        assert target in [r.id for r in found] and found[0].state == "queued"
        detail = await ex.job_detail(target, scan_budget=0)  # from the index, no scan
        assert detail.state == "queued" and detail.args == [37, 37]
        # Enqueued after the index's last round (it reads once a second; stopped here): a
        # miss reads the stream's tail before it says "not found".
        await ex.index.stop()
        fresh = await client.enqueue("tests.tasks:add", 1, 2, job_id="just-now")
        assert ex.index.seq_of(fresh.id) is None
        assert (await ex.job_detail(fresh.id, scan_budget=0)).state == "queued"
        await Actions(client).purge_queue("default")
        with pytest.raises(JobNotFound):
            await ex.job_detail(target, scan_budget=0)
        assert ex.index.seq_of(target) is None  # the miss dropped it
    finally:
        await ex.close()


async def _indexed(ex, n: int) -> bool:
    return len(ex.index.ids) >= n


def naqd_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [naqd_executable(), *args, "--servers", url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def test_cli_actions_are_audited_and_yaml_schedules_need_no_file(client, nats_server) -> None:
    url = nats_server.url
    state = ScheduleState(client._js)
    await state.set_yaml_schedules(
        [ScheduleConfig(name="hourly", task="tests.tasks:add", cron="0 * * * *")]
    )
    await state.set_yaml_names(["hourly"])
    listed = await asyncio.to_thread(naqd_cli, url, "schedules", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)["schedules"]
    assert (row["name"], row["origin"]) == ("hourly", "yaml")
    paused = await asyncio.to_thread(naqd_cli, url, "schedules", "pause", "hourly")
    assert paused.returncode == 0, paused.stderr
    missing = await asyncio.to_thread(naqd_cli, url, "dlq", "delete", "nope", "--yes")
    assert missing.returncode == 3
    audit = await asyncio.to_thread(naqd_cli, url, "audit", "--json")
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [(e["action"], e["target"], e["result"], e["via"]) for e in entries] == [
        ("dlq.delete", "nope", "not_found", "cli"),
        ("schedule.pause", "hourly", "ok", "cli"),
    ]
    assert entries[0]["actor"].startswith("cli:")
    table = await asyncio.to_thread(naqd_cli, url, "audit", "--action", "schedule")
    assert "schedule.pause" in table.stdout and "dlq.delete" not in table.stdout


async def test_a_nats_outage_is_unavailable_not_a_nats_error(nats_server) -> None:
    from naqd.client.errors import Unavailable

    async with Client(nats_server.url) as c:
        await ensure_resources(c._js, Config(nats=NatsConfig(servers=(nats_server.url,))))
        nats_server.stop()
        await until(_gone(c), what="the client to see the server gone")
        started = time.monotonic()
        for _, call in (
            ("overview", c.explorer.overview),
            ("pause", lambda: Actions(c, actor="x").pause_queue("default")),
            ("search", lambda: _drain_search(c.explorer.search_args("a=1"))),
        ):
            with pytest.raises(Unavailable):
                await call()
        assert time.monotonic() - started < 2  # at once, not after a request timeout


async def _drain_search(search) -> None:
    async for _ in search:
        pass


def _gone(c: Client):
    async def check() -> bool:
        return not c.nc.is_connected

    return check


async def test_linked_reads_queue_schedule_jobs_worker_audit_and_running_labels(
    client, nats_server, tmp_path
) -> None:
    from naqd.client.errors import ProcessNotFound

    ex = client.explorer
    with pytest.raises(QueueNotFound):
        await ex.queue("ghost")
    with pytest.raises(ScheduleNotFound):
        await ex.schedule("ghost")
    with pytest.raises(ProcessNotFound):
        await ex.worker("h.worker.1")
    await client.schedule("tick", "tests.tasks:add", 1, 1, every=60)
    fired = await Actions(client, actor="fay").trigger_schedule("tick")
    assert (await ex.schedule("tick")).origin == "code"
    assert [r.id for r in await ex.schedule_jobs("tick")] == fired.ids
    assert [e.action for e in (await ex.audit(actor="fay")).items] == ["schedule.trigger"]
    async with worker(nats_server.url, concurrency=1):
        blocked = await client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        await until(lambda: _state(ex, blocked.id, "running"), what="running")
        # The same again: it waits behind the first (concurrency 1).
        await client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        rows = {e.job.id: e.job.state async for e in ex.search_args(tmp_path.name) if e.job}
        assert rows[blocked.id] == "running" and sorted(rows.values()) == ["queued", "running"]
        queued = await ex.list_jobs(state="queued")
        assert blocked.id not in [r.id for r in queued.items] and len(queued.items) == 1
        row = await ex.queue("default")  # a worker may hold the second job for a slot
        assert row.running >= 1 and row.queued + row.running == 2
        (tmp_path / "release").write_text("go")
        await client.wait(blocked.id, timeout=10)


async def test_audit_retention_is_applied_by_ensure_audit_stream(client) -> None:
    from naqd.models import AuditConfig
    from naqd.protocol.names import AUDIT_STREAM
    from naqd.protocol.resources import ensure_audit_stream

    await Actions(client, actor="gil").pause_queue("default")  # made with the defaults
    assert (await client._js.stream_info(AUDIT_STREAM)).config.max_age == 90 * 86400
    config = Config(audit=AuditConfig(max_age=3600.0, max_entries=2))
    await ensure_audit_stream(client._js, config)
    info = await client._js.stream_info(AUDIT_STREAM)
    assert (info.config.max_age, info.config.max_msgs) == (3600.0, 2)
    for _ in range(3):
        await Actions(client, actor="gil").resume_queue("default")
    page = await client.explorer.audit()
    assert len(page.items) == 2 and page.cursor is None  # the oldest went first


async def test_every_attempt_keeps_its_worker_and_times(client, nats_server) -> None:
    """A job that failed, was retried and died: each attempt in its detail says which
    worker ran it and when (the record keeps them per error, docs/protocol.md)."""
    async with worker(nats_server.url, retries=1, backoff=[0.05]):
        job = await client.enqueue("tests.tasks:fail", "twice", job_id="two-attempts")
        await client.wait(job.id, timeout=10)
    detail = await client.explorer.job_detail(job.id)
    assert detail.state == "dead" and [a.status for a in detail.attempts] == ["failed"] * 2
    first, second = detail.attempts
    for a in detail.attempts:
        assert a.worker and a.error_type == "ValueError" and "Traceback" in a.traceback
        assert a.started_at is not None and a.finished_at is not None
        assert a.started_at <= a.finished_at
    assert first.finished_at <= second.started_at  # the retry ran after the first ended


async def test_keep_args_shows_a_finished_jobs_arguments(client, nats_server) -> None:
    """With `results.keep_args` the record carries the job's arguments, so a job that has
    left the stream still shows them; without it a finished job's arguments are gone."""
    kept = Worker(
        nats_server.url, tasks=["tests.tasks"], queues={"default": {}},
        settings={"results": {"keep_args": True}},
    )  # fmt: skip
    async with kept:
        job = await client.enqueue("tests.tasks:add", 2, 3, job_id="kept-args")
        assert await job.result(timeout=10) == 5
    detail = await client.explorer.job_detail(job.id)
    assert detail.state == "succeeded" and detail.args == [2, 3] and detail.kwargs == {}
    async with worker(nats_server.url):
        plain = await client.enqueue("tests.tasks:add", 4, 5, job_id="plain-args")
        assert await plain.result(timeout=10) == 9
    assert (await client.explorer.job_detail(plain.id)).args == []
