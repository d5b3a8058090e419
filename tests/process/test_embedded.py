"""The embedded nats-server: naqd uses only the server it started, and starts it again
when it dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from naqd import SyncClient
from naqd.supervisor.embedded import EmbeddedNats, NotOurServer
from tests.conftest import REPO, naqd_executable
from tests.natsserver import NatsServer, free_port, wait_until
from tests.process.test_observe import NotifySocket


def write_config(tmp_path: Path, port: int, metrics_port: int) -> Path:
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{embedded: {{listen: "127.0.0.1:{port}", store_dir: {tmp_path / "embedded"}}}}}
tasks: {{imports: [tests.tasks]}}
queues: {{default: {{concurrency: 2, processes: 1}}}}
heartbeat: {{interval: 1s}}
metrics: {{listen: "127.0.0.1:{metrics_port}", health_grace: 0s}}
"""
    )
    return config


def start(config: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [naqd_executable(), "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
        )


def stream_names(url: str) -> list[str]:
    async def go() -> list[str]:
        import nats

        nc = await nats.connect(url)
        try:
            return [s.config.name for s in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    return asyncio.run(go())


def test_a_taken_port_exits_69_and_leaves_the_other_server_alone(tmp_path: Path) -> None:
    other = NatsServer(tmp_path / "other").start()
    try:
        config = write_config(tmp_path, other.port, free_port())
        log = tmp_path / "naqd.log"
        proc = start(config, log)
        try:
            assert proc.wait(30) == 69, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert "answered by another server" in text, text
        assert "started worker" not in text
        # Nothing of naqd's was created on the server it does not own.
        assert stream_names(other.url) == []
    finally:
        other.stop()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:  # not listening yet
        return 0, {}


def metric(base: str, name: str) -> float | None:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                return s.value
    return None


def test_a_killed_embedded_server_comes_back_and_jobs_run(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{metrics_port}"
    config = write_config(tmp_path, port, metrics_port)
    log = tmp_path / "naqd.log"
    notify = NotifySocket(tmp_path / "notify.sock")
    proc = start(config, log, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="60000000")
    url = f"nats://127.0.0.1:{port}"
    try:
        wait_until(lambda: get_json(f"{base}/healthz")[0] == 200, 30, what="healthy")
        _, body = get_json(f"{base}/healthz")
        first = body["nats_server"]["pid"]
        assert body["nats_server"]["state"] == "up"
        # systemd's variables are the supervisor's alone (docs/systemd.md).
        environ = Path(f"/proc/{first}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]
        assert metric(base, "naqd_embedded_server_restarts_total") == 0
        with SyncClient(url) as client:
            assert client.enqueue("tests.tasks:add", 1, 2).result(timeout=20) == 3

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "embedded nats-server back" in log.read_text(), 30, what="restart")
        assert "died with signal SIGKILL" in log.read_text()
        assert metric(base, "naqd_embedded_server_restarts_total") == 1
        _, body = get_json(f"{base}/healthz")
        assert body["nats_server"]["pid"] not in (None, first)
        wait_until(lambda: get_json(f"{base}/healthz")[0] == 200, 30, what="healthy again")
        with SyncClient(url) as client:
            assert client.enqueue("tests.tasks:add", 20, 22).result(timeout=30) == 42
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()


def test_an_embedded_server_that_exited_on_a_taken_port_names_the_server_there(
    tmp_path: Path,
) -> None:
    """On a busy machine our nats-server can exit (bind failed) before the readiness
    probe reached the port: the error must still name the other server, not guess."""
    other = NatsServer(tmp_path / "other").start()
    try:
        embedded = EmbeddedNats(f"127.0.0.1:{other.port}", str(tmp_path / "embedded"))
        embedded.server_name = "naqd-embedded-test"
        embedded.proc = subprocess.Popen(["true"])  # already gone, as after a failed bind
        embedded.proc.wait(10)
        with pytest.raises(NotOurServer, match="answered by another server"):
            embedded._ours()
    finally:
        other.stop()
