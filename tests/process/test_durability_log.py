"""The daemon's startup log names an external server that acknowledges before fsync."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Daemon
from tests.natsserver import NatsServer, free_port


def test_startup_log_warns_about_a_server_without_sync_always(tmp_path: Path) -> None:
    http = free_port()
    nats = NatsServer(tmp_path / "nats", config=f"http_port: {http}\n").start()
    config = tmp_path / "naq.yaml"
    config.write_text(
        f"""
nats: {{servers: [{nats.url}], monitoring: ["http://127.0.0.1:{http}"]}}
queues: {{default: {{concurrency: 1}}}}
scheduler: {{enabled: false}}
metrics: {{listen: "127.0.0.1:{free_port()}"}}
"""
    )
    daemon = Daemon(config, tmp_path / "naqd.log").start()
    try:
        daemon.wait_for_log("fsyncs every 2m, not before it acknowledges")
    finally:
        daemon.stop()
        nats.stop()
