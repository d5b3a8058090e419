"""A client-only install against a real nats-server: the Python client and the CLI
commands that only talk to NATS work without the daemon extra (its modules are refused
in the child interpreter, tests/thinclient.py)."""

from __future__ import annotations

import json

import nats

from naqd.config import parse_config
from naqd.protocol.resources import ensure_resources, ensure_scheduler_resources
from tests.natsserver import NatsServer
from tests.thinclient import run_cli, run_python


async def test_client_and_nats_commands_work_without_the_daemon_extra(
    nats_server: NatsServer,
) -> None:
    # What a daemon creates at start; this test runs none.
    nc = await nats.connect(nats_server.url)
    config = parse_config("queues: {default: {}}", "naq.yaml")
    await ensure_resources(nc.jetstream(), config)
    await ensure_scheduler_resources(nc.jetstream(), config)
    await nc.close()
    url = nats_server.url

    proc = run_python(
        f"""
        from naqd import SyncClient

        with SyncClient({url!r}) as client:
            job = client.enqueue("pkg.mod:fn", 1, 2)
            print(job.id, client.status(job.id))
        """
    )
    assert proc.returncode == 0, proc.stderr
    sync_job, status = proc.stdout.split()
    assert status == "queued"

    enqueued = run_cli("enqueue", "pkg.mod:fn", "3", "--servers", url)
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    result = run_cli("result", job_id, "--servers", url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"id": job_id, "status": "queued"}
    queues = run_cli("queues", "--servers", url)
    assert queues.returncode == 0, queues.stderr
    assert queues.stdout.splitlines()[1].split()[:2] == ["default", "2"]
    for args in (
        ["status"],
        ["workers"],
        ["dlq", "list"],
        ["delayed"],
        ["schedules"],
        ["queues", "pause", "default"],
        ["job", "cancel", sync_job],
    ):
        proc = run_cli(*args, "--servers", url)
        assert proc.returncode == 0, (args, proc.stderr)
