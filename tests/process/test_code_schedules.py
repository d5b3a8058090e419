"""Schedules created from code, fired by the elected scheduler of two real daemons:
one job per tick, modify takes effect, remove stops it, a YAML name is refused."""

from __future__ import annotations

import calendar
import re
import subprocess
import time
from pathlib import Path

import pytest

from naqd import ScheduleError, SyncClient
from tests.conftest import REPO, naqd_executable
from tests.natsserver import wait_until
from tests.process.test_scheduling import SCHEDULED, fired, result_keys, runs

YAML_SCHEDULE = """
schedules:
  nightly: {cron: "0 3 * * *", task: "tests.tasks:add", args: [1, 2]}
"""


def stamp_seconds(job_id: str) -> int:
    return calendar.timegm(time.strptime(job_id.rsplit(".", 1)[1], "%Y%m%dT%H%M%SZ"))


def test_code_schedule_fires_once_per_tick_on_two_daemons_and_stops_after_remove(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    body = SCHEDULED + YAML_SCHEDULE
    a = daemon_factory(body, ready_workers=1, name="a")
    b = daemon_factory(body, ready_workers=1, name="b")
    wait_until(lambda: "became scheduler leader" in a.log + b.log, 20, what="a leader")
    with SyncClient(nats_server.url) as client:
        # The leader publishes its YAML names; a code schedule may not shadow them.
        def refused() -> bool:
            try:
                client.schedule("nightly", "tests.tasks:add", 1, 2, every=60)
            except ScheduleError:
                return True
            client.remove_schedule("nightly")
            return False

        wait_until(refused, 20, interval=0.2, what="the YAML name to be refused")

        info = client.schedule("tick", "tests.tasks:count_run", str(tmp_path), every="1s")
        assert info.every == 1.0 and info.origin == "code"
        wait_until(lambda: len(fired(a, b)) >= 4, 20, what="four fires")

        client.modify_schedule("tick", every=2)
        seen = len(fired(a, b))
        wait_until(lambda: len(fired(a, b)) >= seen + 3, 20, what="fires after modify")
        late = sorted(fired(a, b))[-2:]
        assert stamp_seconds(late[1]) - stamp_seconds(late[0]) == 2

        assert [s.name for s in client.list_schedules()] == ["tick"]
        assert client.remove_schedule("tick") is True
        assert client.remove_schedule("tick") is False
        # One more fire may have been on its way as the removal landed.
        time.sleep(0.5)
        count = len(fired(a, b))
        time.sleep(4)  # the behaviour under test: two 2 s ticks pass, nothing fires
        assert len(fired(a, b)) == count
    jobs = fired(a, b)
    assert len(set(jobs)) == len(jobs), "a tick was fired by both schedulers"
    wait_until(lambda: runs(tmp_path) == len(jobs), 20, what="every fired job to run")
    assert result_keys(nats_server.url, "cron.tick.") == sorted(jobs)


def test_pause_and_resume_a_code_schedule(daemon_factory, nats_server, tmp_path: Path) -> None:
    d = daemon_factory(SCHEDULED + YAML_SCHEDULE, ready_workers=1)
    d.wait_for_log("became scheduler leader")
    with SyncClient(nats_server.url) as client:
        client.schedule("p", "tests.tasks:count_run", str(tmp_path), every=1)
        listing = subprocess.run(
            [naqd_executable(), "schedules", "--config", str(d.config_path)],
            capture_output=True, text=True, cwd=REPO, timeout=30,
        ).stdout  # fmt: skip
        assert re.search(r"^nightly\s+yaml\s+0 3 \* \* \*\s+active", listing, re.M)
        assert re.search(r"^p\s+code\s+every 1s\s+active", listing, re.M)
        wait_until(lambda: len(fired(d)) >= 2, 20, what="two fires")
        client.pause_schedule("p")
        assert client.get_schedule("p").paused
        time.sleep(0.5)
        count = len(fired(d))
        time.sleep(2.5)  # the behaviour under test: paused ticks do not fire
        assert len(fired(d)) == count
        client.resume_schedule("p")
        wait_until(lambda: len(fired(d)) >= count + 2, 20, what="fires after resume")
        client.remove_schedule("p")


def test_bad_definitions_are_refused_before_storing(nats_server, daemon_factory) -> None:
    d = daemon_factory(SCHEDULED, ready_workers=1)
    d.wait_for_log("scheduler ready")
    with SyncClient(nats_server.url) as client:
        for kwargs in ({}, {"cron": "* * *"}, {"every": 0.5}, {"cron": "0 * * * *", "every": 5}):
            with pytest.raises(ScheduleError):
                client.schedule("bad", "tests.tasks:add", **kwargs)
        with pytest.raises(ScheduleError, match="timezone"):
            client.schedule("bad", "tests.tasks:add", cron="0 3 * * *", timezone="Mars/Base")
        assert client.list_schedules() == []
