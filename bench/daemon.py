"""The real naqd daemon under benchmark: start, fill its queue, time the drain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats

from bench.procstat import children, cpu_seconds, tree_cpu
from naqd.client import Client
from naqd.config.model import Config, NatsConfig, QueueConfig
from naqd.protocol.resources import ensure_resources
from tests.natsserver import wait_until

REPO = Path(__file__).resolve().parent.parent


class BenchDaemon:
    def __init__(
        self, url: str, tmp: Path, processes: int, concurrency: int, queue: str = "bench"
    ) -> None:
        self.url = url
        self.config = tmp / f"bench-{queue}-{processes}.yaml"
        self.config.write_text(
            f"nats: {{servers: [{url}]}}\n"
            "tasks: {imports: [bench.tasks]}\n"
            f"queues: {{{queue}: {{concurrency: {concurrency}, processes: {processes}}}}}\n"
            "logging: {level: WARNING}\n"
            "scheduler: {enabled: false}\n"  # only workers: the drain is what is timed
            "metrics: {enabled: false}\n"
            "shutdown: {grace_period: 10s}\n"
        )
        self.processes = processes
        self.queue = queue
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchDaemon:
        naqd = str(Path(sys.executable).parent / "naqd")
        self.proc = subprocess.Popen(
            [naqd, "--config", str(self.config)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        wait_until(lambda: len(self.worker_pids()) == self.processes, 30, what="workers")
        asyncio.run(_wait_consumers(self.url, self.queue, self.processes))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        # Spawned children of the supervisor (the multiprocessing resource tracker aside).
        return [p for p in children(self.pid) if b"spawn_main" in _cmdline(p)]

    def wait_empty(self, timeout: float) -> None:
        wait_until(lambda: asyncio.run(jobs_in_stream(self.url)) == 0, timeout, 0.05, "drain")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


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
            info = await js.consumer_info("NAQD_JOBS", f"q-{queue}")
            if info.num_waiting >= processes:
                break
        except Exception:
            pass
        await asyncio.sleep(0.05)
    await nc.close()


async def jobs_in_stream(url: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info("NAQD_JOBS")
    await nc.close()
    return info.state.messages


async def fill(
    url: str, n: int, result_ttl: float | None, queue: str = "bench", task: str = "bench.tasks:noop"
) -> None:
    nc = await nats.connect(url)
    await ensure_resources(
        nc.jetstream(),
        Config(nats=NatsConfig(servers=(url,)), queues={queue: QueueConfig(name=queue)}),
    )
    async with Client(url) as client:
        for start in range(0, n, 20000):
            count = min(20000, n - start)
            await client.enqueue_many(task, [()] * count, queue=queue, result_ttl=result_ttl)
    await nc.close()


async def _pause(url: str, queue: str, paused: bool) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    if paused:
        await js.pause_consumer("NAQD_JOBS", f"q-{queue}", "2099-01-01T00:00:00Z")
    else:
        await js.resume_consumer("NAQD_JOBS", f"q-{queue}")
    await nc.close()


def drain(url: str, tmp: Path, processes: int, n: int, result_ttl: float | None) -> dict:
    """Fill the queue while its consumer is paused, start the daemon and let its workers
    park their pulls, then resume and time until the stream is empty."""
    asyncio.run(fill(url, n, result_ttl))
    asyncio.run(_pause(url, "bench", True))
    server_pid = _nats_server_pid(url)
    with BenchDaemon(url, tmp, processes=processes, concurrency=256) as d:
        asyncio.run(_pause(url, "bench", False))
        pass_start = time.monotonic()
        cpu0, ncpu0 = tree_cpu(d.pid), cpu_seconds(server_pid)
        remaining = n
        t_first = None
        while remaining:
            remaining = asyncio.run(jobs_in_stream(url))
            if t_first is None and remaining < n:
                t_first = time.monotonic()
            time.sleep(0.02)
        t_end = time.monotonic()
        wall = t_end - pass_start
        cpu1, ncpu1 = tree_cpu(d.pid), cpu_seconds(server_pid)
    return {
        "rate": n / (t_end - (t_first or pass_start)),
        "naqd_cpu": (cpu1 - cpu0) / wall,
        "nats_cpu": (ncpu1 - ncpu0) / wall,
    }


def _nats_server_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        cmd = _cmdline(int(entry.name)) if entry.name.isdigit() else b""
        if b"nats-server" in cmd and port.encode() in cmd:
            return int(entry.name)
    return 0
