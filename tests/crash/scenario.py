"""naqd with its embedded nats-server on the lazy filesystem: start, load it with jobs
of every kind, kill -9 every process, crash the filesystem, start again, count.

One `Round` puts, before the crash:
- `held`: jobs enqueued behind a paused queue (acknowledged, not run);
- `done`: jobs that ran and whose results were stored;
- `flight`: jobs running when the crash hits (they wait for a release file);
- `later`: delayed jobs far in the future (the server holds them), and `soon`: delayed
  jobs due while naqd is down, which must run after the restart;
- `child`: dependent jobs waiting on a parent in the paused queue;
- a code schedule, paused, whose definition and pause live in the schedule KV.
After the restart, `Round.verify` lets everything run and counts what was lost.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from naqd import SyncClient
from tests.conftest import Daemon
from tests.crash.harness import LazyMount
from tests.natsserver import free_port, wait_until

TASK = "tests.tasks:record"
HELD = "tests.tasks:record_when_released"


def config_text(store: Path, port: int, sync: str | None, metrics_port: int) -> str:
    sync_line = f", sync: {sync}" if sync else ""
    return f"""
nats: {{embedded: {{listen: "127.0.0.1:{port}", store_dir: "{store}"{sync_line}}}}}
tasks: {{imports: [tests.tasks]}}
queues:
  held: {{concurrency: 4}}
  done: {{concurrency: 64}}
  flight: {{concurrency: 32, ack_wait: 2s}}
heartbeat: {{interval: 1s}}
scheduler: {{leader_election: {{lease: 3s, renew_every: 1s}}}}
metrics: {{listen: "127.0.0.1:{metrics_port}", health_grace: 0s}}
"""


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, deepest first (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []

    def walk(p: int) -> None:
        for c in children.get(p, []):
            walk(c)
            out.append(c)

    walk(pid)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class Counts:
    lost_jobs: int = 0  # acknowledged, then never ran after the restart
    lost_results: int = 0  # stored before the crash, gone after it
    reruns: int = 0  # ran more than once (allowed: at-least-once)
    lost_delayed: int = 0
    lost_children: int = 0
    lost_schedules: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return (
            self.lost_jobs
            + self.lost_results
            + self.lost_delayed
            + self.lost_children
            + self.lost_schedules
        )


class Node:
    """naqd on a lazy mount: the daemon, its store, the directory tasks write to."""

    def __init__(self, root: Path, sync: str | None = None) -> None:
        self.root = root
        self.fs = LazyMount(root / "fs")
        (root / "fs").mkdir(parents=True, exist_ok=True)
        self.work = root / "work"  # on the real disk: runs are counted outside the crash
        self.work.mkdir(exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.sync = sync
        self.daemon: Daemon | None = None
        self.starts = itertools.count()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self, sync: str | None = ...) -> Daemon:  # type: ignore[assignment]
        if sync is not ...:
            self.sync = sync
        if self.fs.proc is None or self.fs.proc.poll() is not None:
            self.fs.start()
        config = self.root / "naq.yaml"
        config.write_text(
            config_text(self.fs.mnt / "nats", self.port, self.sync, self.metrics_port)
        )
        self.daemon = Daemon(config, self.root / f"naqd-{next(self.starts)}.log").start()
        self.daemon.wait_for_log("ready: queue", count=3, timeout=90)
        return self.daemon

    def kill_all(self) -> None:
        """kill -9 of every process: the nats-server and the children first, so none
        sees its parent die and shuts down cleanly."""
        assert self.daemon is not None and self.daemon.proc is not None
        top = self.daemon.proc.pid
        pids = descendants(top)
        for pid in [*pids, top]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.daemon.proc.wait(10)
        wait_until(lambda: not any(alive(p) for p in pids), 30, what="every process dead")
        self.daemon._log.close()

    def crash(self) -> None:
        self.kill_all()
        self.fs.crash()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        self.fs.stop()

    def runs(self) -> Counter[int]:
        counts: Counter[int] = Counter()
        for path in self.work.rglob("runs-*"):
            counts.update(int(line) for line in path.read_text().split())
        return counts

    def starts_seen(self) -> set[int]:
        seen: set[int] = set()
        for path in self.work.rglob("starts-*"):
            seen.update(int(line) for line in path.read_text().split())
        return seen


class Round:
    """One load of every case, numbered from `base` so rounds never share job numbers."""

    def __init__(self, node: Node, base: int, size: int = 100) -> None:
        self.node = node
        self.base = base
        self.size = size
        self.held: list[int] = []
        self.done: dict[int, str] = {}  # number -> job id, result stored
        self.flight: list[int] = []
        self.later: list[str] = []
        self.soon: list[int] = []
        self.children: list[int] = []
        self.schedule = f"crash-{base}"

    def numbers(self, offset: int, n: int) -> list[int]:
        start = self.base + offset * self.size
        return list(range(start, start + n))

    def load(self, client: SyncClient) -> None:
        work = str(self.node.work)
        client.pause_queue("held")
        self.held = self.numbers(0, self.size)
        client.enqueue_many(TASK, [(work, n) for n in self.held], queue="held")

        nums = self.numbers(1, self.size)
        jobs = client.enqueue_many(TASK, [(work, n) for n in nums], queue="done")
        for n, job in zip(nums, jobs, strict=True):
            assert job.result(timeout=90) == n
            self.done[n] = job.id

        self.flight = self.numbers(2, 20)
        flight_dir = self.node.work / f"flight-{self.base}"  # its own release file
        flight_dir.mkdir()
        client.enqueue_many(HELD, [(str(flight_dir), n) for n in self.flight], queue="flight")
        wait_until(lambda: set(self.flight) <= self.node.starts_seen(), 90, what="jobs in flight")

        self.later = [
            client.enqueue_in(timedelta(hours=1), TASK, work, n, queue="done").id
            for n in self.numbers(3, 20)
        ]
        self.soon = self.numbers(4, 20)
        for n in self.soon:
            client.enqueue_in(timedelta(seconds=1), TASK, work, n, queue="done")

        parent = client.enqueue(TASK, work, self.base + 5 * self.size - 1, queue="held")
        self.children = self.numbers(5, 20)
        for n in self.children:
            client.enqueue(TASK, work, n, queue="done", depends_on=[parent])

        client.schedule(self.schedule, TASK, work, -1, every="1h", queue="done")
        client.pause_schedule(self.schedule)

    def verify(self, client: SyncClient, timeout: float = 120.0) -> Counts:
        """After the restart: release everything, wait for what can run, count. The
        timeout is generous: the poll ends as soon as every job ran; only a loss (or a
        machine loaded far beyond a CI run) waits it out."""
        counts = Counts()
        for n, job_id in self.done.items():
            record = client.record(job_id)
            if record is None or record.status != "succeeded":
                counts.lost_results += 1
                counts.details.append(f"result of {n}: {record}")
        delayed = {d.id for d in client.delayed()}
        counts.lost_delayed = sum(1 for job_id in self.later if job_id not in delayed)
        info = client.get_schedule(self.schedule)
        if info is None or not info.paused:
            counts.lost_schedules = 1
            counts.details.append(f"schedule {self.schedule}: {info}")

        (self.node.work / f"flight-{self.base}" / "release").touch()
        client.resume_queue("held")
        parent = self.base + 5 * self.size - 1
        expected = {*self.held, *self.flight, *self.soon, *self.children, parent}
        runs = self.node.runs()
        with contextlib.suppress(AssertionError):  # what never ran is counted below
            wait_until(lambda: expected <= set(self.node.runs()), timeout, what="jobs to run")
        runs = self.node.runs()
        missing = expected - set(runs)
        counts.lost_children = len(missing & set(self.children))
        counts.lost_jobs = len(missing - set(self.children))
        if missing:
            counts.details.append(f"{len(missing)} never ran, e.g. {sorted(missing)[:10]}")
        del counts.details[10:]
        mine = set(range(self.base, self.base + 6 * self.size))
        counts.reruns = sum(c - 1 for n, c in runs.items() if n in mine and c > 1)
        return counts


LIMBO = "limbo"  # a queue no worker serves: its jobs stay stored, countable


def enqueue_limbo(node: Node, client: SyncClient, numbers: list[int]) -> None:
    """One awaited enqueue after another: single writes. (An enqueue_many goes as
    atomic batches, whose commit nats-server fsyncs even under a sync interval.)"""
    client.declare_queue(LIMBO)
    for n in numbers:
        client.enqueue(TASK, str(node.work), n, queue=LIMBO)


def stored_in_limbo(node: Node) -> int:
    """Jobs of the limbo queue the stream holds (none of them can have run)."""
    import asyncio

    import nats

    from naqd.protocol.names import JOBS_STREAM, job_subject

    async def go() -> int:
        nc = await nats.connect(node.url)
        try:
            subject = job_subject(LIMBO)
            info = await nc.jetstream().stream_info(JOBS_STREAM, subjects_filter=subject)
            return sum((info.state.subjects or {}).values())
        finally:
            await nc.close()

    return asyncio.run(go())
