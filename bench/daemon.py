"""The real naqd daemon under benchmark: its config, its processes, and a watch on the
jobs stream kept on one open connection."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats

from bench.procstat import children, cpu_seconds
from naqd.protocol.names import HEARTBEATS_BUCKET, JOBS_STREAM, consumer_name
from tests.natsserver import wait_until

REPO = Path(__file__).resolve().parent.parent


class BenchDaemon:
    """`naqd --config ...` as a subprocess. `schedules` (name -> cron, possibly none)
    turn the scheduler on."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        processes: int = 1,
        concurrency: int = 256,
        queue: str = "bench",
        schedules: dict[str, str] | None = None,
        task: str = "bench.tasks:anoop",
        queues: tuple[str, ...] = (),
        pool: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """`queues`: several queues (`queue` is then the first), each with `processes`
        processes of its own, or (`pool`) all in one pool of `processes` processes;
        `settings`: more keys for every queue."""
        self.url = url
        self.processes = processes
        self.queues = queues or (queue,)
        self.queue = self.queues[0]
        self.pool = pool
        # Worker processes: the pool's, or each queue's own.
        self.workers = processes if pool else processes * len(self.queues)
        self.scheduler = schedules is not None
        each = {"concurrency": concurrency} if pool else {
            "concurrency": concurrency, "processes": processes
        }  # fmt: skip
        each.update(settings or {})  # more queue keys (prefetch ...)
        config: dict[str, Any] = {
            "nats": {"servers": [url]},
            "tasks": {"imports": ["bench.tasks"]},
            "queues": {q: dict(each) for q in self.queues},
            "logging": {"level": "WARNING"},
            "scheduler": {"enabled": self.scheduler},
            "metrics": {"enabled": False},
            "shutdown": {"grace_period": "10s"},
        }
        if pool:
            config["pools"] = {"benchpool": {"queues": list(self.queues), "processes": processes}}
        if schedules:
            config["schedules"] = {
                name: {"cron": cron, "task": task, "queue": queue}
                for name, cron in schedules.items()
            }
        extra = "".join(f"-{k}{v}" for k, v in sorted((settings or {}).items()))
        tag = f"{self.queue}-{len(self.queues)}{'p' if pool else ''}-{processes}{extra}"
        self.config = tmp / f"bench-{tag}.yaml"
        self.config.write_text(json.dumps(config, indent=1))  # JSON is YAML
        self.log = tmp / f"naqd-{tag}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BenchDaemon:
        """Start naqd and return at once: a drain starts it on a full queue and times
        from the first job gone. `ready()` waits for it to serve an empty queue."""
        naqd = str(Path(sys.executable).parent / "naqd")
        with self.log.open("wb") as log:  # warnings stay out of the table; errors are shown
            self.proc = subprocess.Popen(
                [naqd, "--config", str(self.config)],
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    async def ready(self) -> None:
        """Every child is up and every worker has a pull request parked on the queue."""
        try:
            n = self.workers + self.scheduler
            wait_until(lambda: len(self.child_pids()) == n, 30, what="naqd children")
            for queue in self.queues:
                await _wait_consumers(self.url, queue, self.processes)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> BenchDaemon:
        self.start()
        asyncio.run(self.ready())
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
            self._report_log()

    def _report_log(self) -> None:
        """Errors in full; warnings as one line of distinct messages with counts."""
        warnings: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if " ERROR " in line or " CRITICAL " in line:
                print(f"  naqd: {line}", flush=True)
            elif " WARNING " in line:
                warnings[line.partition(" | ")[2] or line] += 1
        if warnings:
            text = "; ".join(f"{m} (x{n})" for m, n in warnings.most_common())
            print(f"  naqd warnings: {text}", flush=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def child_pids(self) -> list[int]:
        """Workers and the scheduler: spawned children of the supervisor (the
        multiprocessing resource tracker aside)."""
        return [p for p in children(self.pid) if _is_child(_cmdline(p))]

    def tree_pids(self) -> list[int]:
        return [self.pid, *children(self.pid)]


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


async def child_roles(nc: Any, pids: list[int], timeout: float = 15) -> dict[int, str]:
    """pid -> "worker" | "scheduler", from the children's heartbeat keys
    (`<host>.<role>.<pid>`), which each child puts as soon as it serves."""
    kv = await nc.jetstream().key_value(HEARTBEATS_BUCKET)
    deadline = time.monotonic() + timeout
    while True:
        try:
            keys = await kv.keys()
        except Exception:  # no keys yet
            keys = []
        roles = {int(k.rsplit(".", 2)[2]): k.rsplit(".", 2)[1] for k in keys}
        found = {p: roles[p] for p in pids if p in roles}
        if len(found) == len(pids) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def _is_child(cmdline: bytes) -> bool:
    """A worker or scheduler: `spawn_main` until it sets its title, `naqd: worker[...]`,
    `naqd: pool[...]` or `naqd: scheduler` after (naqd/proctitle.py)."""
    titles = (b"naqd: worker", b"naqd: pool", b"naqd: scheduler")
    return b"spawn_main" in cmdline or cmdline.startswith(titles)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


async def _wait_consumers(url: str, queue: str, processes: int) -> None:
    """Ready means each worker has a pull request waiting on the consumer."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            info = await js.consumer_info(JOBS_STREAM, consumer_name(queue))
            if info.num_waiting >= processes:
                break
        except Exception:
            pass
        await asyncio.sleep(0.05)
    await nc.close()


class StreamWatch:
    """Message count of the jobs stream, polled on one connection kept open (a connect
    per poll would cost more than the poll, and land in the timed window)."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    @classmethod
    async def open(cls, url: str) -> StreamWatch:
        return cls(await nats.connect(url))

    async def jobs(self) -> int:
        info = await self.js.stream_info(JOBS_STREAM)
        return int(info.state.messages)

    async def close(self) -> None:
        await self.nc.close()


async def jobs_in_stream(url: str) -> int:
    watch = await StreamWatch.open(url)
    try:
        return await watch.jobs()
    finally:
        await watch.close()


def nats_server_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        cmd = _cmdline(int(entry.name)) if entry.name.isdigit() else b""
        if b"nats-server" in cmd and port.encode() in cmd:
            return int(entry.name)
    return 0
