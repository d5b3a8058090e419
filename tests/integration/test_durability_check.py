"""naqd reads a real server's fsync setting from its monitoring port (/varz)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from naqd.models import NatsConfig
from naqd.observe.durability import durability_warnings
from tests.conftest import naqd_executable
from tests.natsserver import NatsServer, free_port


def server(tmp_path: Path, name: str, jetstream: str = "") -> tuple[NatsServer, str]:
    http = free_port()
    config = f"http_port: {http}\n" + (f"jetstream {{ {jetstream} }}\n" if jetstream else "")
    return NatsServer(tmp_path / name, config=config).start(), f"http://127.0.0.1:{http}"


def test_default_server_is_named_and_sync_always_passes(tmp_path: Path) -> None:
    lazy, lazy_http = server(tmp_path, "lazy")
    durable, durable_http = server(tmp_path, "durable", "sync_interval: always")
    try:
        warnings = durability_warnings(
            NatsConfig(servers=(lazy.url, durable.url), monitoring=(lazy_http, durable_http))
        )
        assert len(warnings) == 1, warnings
        assert "fsyncs every 2m" in warnings[0]

        config = tmp_path / "naq.yaml"
        config.write_text(f"nats: {{servers: [{lazy.url}], monitoring: [{lazy_http}]}}\n")
        done = subprocess.run(
            [naqd_executable(), "check", "--config", str(config)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "warning: server" in done.stderr and "sync_interval: always" in done.stderr
    finally:
        lazy.stop()
        durable.stop()
