"""naqd.contrib.django against a real Django project (tests/django_project, sqlite in a
file), a real nats-server and the real `naqd` daemon running the Django tasks: enqueue
on commit, results through Django's task result API, retries, failures, delays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("django", reason="the django extra is not installed")


def test_django_tasks_run_in_a_naqd_worker(daemon_factory, nats_server, tmp_path: Path) -> None:
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
        "NAQD_DJANGO_DB": str(tmp_path / "db.sqlite3"),
        "NAQD_SERVERS": nats_server.url,
        "NAQD_DJANGO_SIGNALS": str(tmp_path / "signals"),
    }
    daemon = daemon_factory(
        """
        tasks:
          imports: [naqd.contrib.django.worker]
        queues:
          default: {retries: 0}
          retrying: {retries: 2, backoff: [0.1]}
        """,
        ready_workers=2,
        env=env,
    )
    django_side = subprocess.run(
        [sys.executable, "-m", "tests.django_project.scenario"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert django_side.returncode == 0, django_side.stderr + "\n" + daemon.log
    seen = json.loads(django_side.stdout.strip().splitlines()[-1])

    # Inside the transaction nothing was published; after the commit the worker ran the
    # task and found the order.
    assert seen["in_transaction_record"] == "None"
    assert seen["paid"] == ["SUCCESSFUL", "paid 1", True]
    # Without on-commit, the worker ran it before the row was committed.
    assert seen["early"] == ["FAILED", ["tests.django_project.shop.models.Order.DoesNotExist"]]
    # A rolled-back transaction published nothing (a later job ran, this one never did).
    assert seen["rolled_back"] == [4, "None"]
    assert seen["elsewhere"] == ["SUCCESSFUL", "paid 1", "mark_paid", 1]
    assert seen["label"] == "7 via express"
    assert seen["flaky"] == ["SUCCESSFUL", 2, 2, ["builtins.ConnectionError"]]
    assert seen["declined"] == [
        "FAILED",
        "tests.django_project.shop.tasks.PaymentDeclined",
        "PaymentDeclined",
        True,
    ]
    assert seen["async"] == 42
    assert seen["later"] == [7, True]

    # Django's task signals: enqueued in the Django process once published, started and
    # finished in the worker, per attempt. The two processes write to the file in either
    # order (the worker may start the job before the producer logs its enqueue).
    signals = (tmp_path / "signals").read_text().splitlines()

    def sent(job_id: str) -> tuple[list[str], list[str]]:
        lines = [line.split()[::2] for line in signals if job_id in line]
        enqueued = [" ".join(x) for x in lines if x[0] == "enqueued"]
        return enqueued, [" ".join(x) for x in lines if x[0] != "enqueued"]

    assert sent(seen["paid_id"]) == (["enqueued READY"], ["started RUNNING", "finished SUCCESSFUL"])
    assert sent(seen["flaky_id"]) == (
        ["enqueued READY"],
        ["started RUNNING", "finished FAILED", "started RUNNING", "finished SUCCESSFUL"],
    )


def test_the_django_test_of_docs_testing_md_passes() -> None:
    """tests/django_project/shop/tests.py, run by Django's own test runner."""
    proc = subprocess.run(
        [sys.executable, "-m", "django", "test", "tests.django_project.shop", "-v", "2",
         "--settings=tests.django_project.settings"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Ran 1 test" in proc.stderr and "OK" in proc.stderr
