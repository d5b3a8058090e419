"""`naqd run --burst`: the real daemon runs what is queued, then exits 0 by itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from naqd import Client
from naqd.config import load_config
from naqd.protocol.resources import ensure_resources
from tests.conftest import REPO, naqd_executable
from tests.natsserver import NatsServer, free_port


def _config(tmp_path: Path, server: NatsServer, extra: str = "") -> Path:
    path = tmp_path / "naq.yaml"
    path.write_text(
        f"""
nats: {{servers: ["{server.url}"]}}
tasks: {{imports: [tests.tasks]}}
queues:
  default: {{concurrency: 4, processes: 2, retries: 1, backoff: [0.5]}}
  other: {{concurrency: 2, processes: 1}}
metrics: {{listen: "127.0.0.1:{free_port()}"}}
{extra}
"""
    )
    return path


def _burst(config: Path, timeout: float = 60) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    proc = subprocess.run(
        [naqd_executable(), "run", "--burst", "--config", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


async def _prepare(config: Path, enqueue: list[tuple[str, tuple[object, ...], dict]]) -> list[str]:
    """Create naqd's streams (as any earlier daemon run would have), then enqueue."""
    cfg = load_config(config)
    async with Client(cfg.nats.urls[0]) as client:
        await ensure_resources(client.nc.jetstream(), cfg)
        return [(await client.enqueue(t, *a, **kw)).id for t, a, kw in enqueue]


def _runs(directory: Path) -> list[int]:
    return sorted(int(line) for f in directory.glob("runs-*") for line in f.read_text().split())


def test_burst_runs_every_queued_job_then_exits_0(nats_server: NatsServer, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # A schedule that would fire every second: in burst mode the scheduler is off.
    config = _config(
        tmp_path,
        nats_server,
        f"""schedules:
  ticker: {{task: "tests.tasks:count_run", every: 1s, args: ["{work}"]}}
""",
    )
    jobs: list[tuple[str, tuple[object, ...], dict]] = [
        ("tests.tasks:record", (str(work), n, 0.05), {}) for n in range(20)
    ]
    # This one enqueues job 100 into queue `other` while it runs.
    jobs.append(("tests.tasks:chain", (nats_server.url, str(work), 100), {}))
    jobs.append(("tests.tasks:always_fail", (str(work),), {}))  # retried once, then DLQ
    asyncio.run(_prepare(config, jobs))
    code, log, _ = _burst(config)
    assert code == 0, log
    assert _runs(work) == [*range(20), 100]
    assert (work / "attempts").read_text().count("\n") == 2  # the retry ran too
    assert not (work / "runs").exists()  # the schedule never fired
    assert "started scheduler" not in log and "started worker" in log
    assert "burst finished: every queue is idle" in log


def test_burst_with_nothing_to_do_exits_at_once(nats_server: NatsServer, tmp_path: Path) -> None:
    config = _config(tmp_path, nats_server)
    asyncio.run(_prepare(config, []))
    code, log, took = _burst(config)
    assert code == 0, log
    assert "burst finished" in log
    assert took < 30
