"""The shipped systemd unit and Docker files: verified by the tools that read them
(systemd-analyze, the compose-spec JSON schema, `naqd check`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, naqd_executable

UNIT = REPO / "systemd" / "naqd.service"
DOCKER = REPO / "docker"


def unit_keys() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart= binaries exist: point them at this checkout's naqd.
    unit = tmp_path / "naqd.service"
    unit.write_text(UNIT.read_text().replace("/usr/bin/naqd", naqd_executable()))
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_unit_has_the_operational_contract() -> None:
    k = unit_keys()
    assert k["Type"] == ["notify"] and k["NotifyAccess"] == ["main"]
    assert k["KillMode"] == ["mixed"]
    assert k["ExecStartPre"][0].endswith("naqd check --config /etc/naqd/naq.yaml")
    assert k["ExecReload"][0].endswith("naqd check --config /etc/naqd/naq.yaml")
    assert k["ExecReload"][1] == "/bin/kill -HUP $MAINPID"
    # The stop deadline outlives the default grace period plus the supervisor's margin.
    from naqd.models import ShutdownConfig
    from naqd.supervisor.supervisor import KILL_MARGIN

    assert int(k["TimeoutStopSec"][0]) > ShutdownConfig().grace_period + KILL_MARGIN
    assert int(k["WatchdogSec"][0]) > 0
    assert k["Environment"] == ["PROMETHEUS_MULTIPROC_DIR=%t/naqd/metrics"]
    assert k["RuntimeDirectory"] == ["naqd"]
    for hardening in ("DynamicUser", "NoNewPrivileges", "ProtectSystem", "StateDirectory"):
        assert hardening in k


@pytest.mark.skipif(
    shutil.which("check-jsonschema") is None
    and not (Path(naqd_executable()).parent / "check-jsonschema").exists(),
    reason="check-jsonschema not installed",
)
def test_compose_file_matches_the_compose_spec_schema() -> None:
    tool = shutil.which("check-jsonschema") or str(
        Path(naqd_executable()).parent / "check-jsonschema"
    )
    proc = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(DOCKER / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_config_and_dockerfile_fit_together() -> None:
    import yaml

    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"nats1", "nats2", "nats3", "naqd-a", "naqd-b", "prometheus"} <= set(services)
    targets = yaml.safe_load((DOCKER / "prometheus.yml").read_text())["scrape_configs"][0]
    assert targets["static_configs"][0]["targets"] == ["naqd-a:9464", "naqd-b:9464"]
    # The config the containers mount is valid, with the cluster URLs from the environment.
    env = {**os.environ, "NATS_URLS": services["naqd-a"]["environment"]["NATS_URLS"]}
    check = subprocess.run(
        [naqd_executable(), "check", "--config", str(DOCKER / "naq.yaml")],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    # Every Prometheus target is a compose service speaking Prometheus text: nats-server's
    # own monitoring port answers JSON, so it is scraped through an exporter.
    for job in yaml.safe_load((DOCKER / "prometheus.yml").read_text())["scrape_configs"]:
        assert "varz" not in job.get("metrics_path", "/metrics"), job
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in services, target
            assert port != "8222", target
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^USER naqd$", dockerfile, re.M)
    assert re.search(r"^EXPOSE 9464$", dockerfile, re.M)
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in ignored and ".venv" in ignored
    for src in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", dockerfile, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
            assert path.rstrip("/") not in ignored, path  # the build context keeps it
