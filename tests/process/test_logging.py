"""The daemon's log lines as journald and a JSON pipeline read them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from naqd import SyncClient
from tests.natsserver import wait_until


def test_json_lines_under_journald_carry_priority_and_job_context(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    log = tmp_path / "naq.log"
    log.touch()  # the daemon's stderr: make it "the journal stream" systemd would name
    st = os.stat(log)
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues: {default: {concurrency: 1, processes: 1, retries: 0}}
        logging: {format: json}
        """,
        ready_workers=1,
        env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
    )
    with SyncClient(nats_server.url) as client:
        job = client.enqueue("tests.tasks:fail", "boom")
        wait_until(lambda: client.status(job.id) == "failed", 30, what="job failed")
    daemon.wait_for_log("dead-lettered")
    ours = [line for line in daemon.log.splitlines() if line.startswith("<") and "{" in line]
    parsed = [(int(line[1]), json.loads(line[3:])) for line in ours]
    assert parsed and all({"time", "level", "message", "role", "pid"} <= set(o) for _, o in parsed)
    [(prio, dead)] = [(p, o) for p, o in parsed if "dead-lettered" in o["message"]]
    assert prio == 3 and dead["level"] == "ERROR"
    assert dead["job_id"] == job.id and dead["task"] == "tests.tasks:fail"
    assert dead["role"] == "worker" and dead["queue"] == "default"
    ready = [(p, o) for p, o in parsed if "ready: queue" in o["message"]]
    assert ready and ready[0][0] == 6 and "job_id" not in ready[0][1]
