"""/healthz does not flap while a killed child is restarted within metrics.health_grace."""

from __future__ import annotations

import os
import signal

from tests.natsserver import wait_until
from tests.process.test_observe import child_pids, healthz


def test_a_restarted_worker_does_not_flap_healthz(daemon_factory) -> None:
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues: {default: {processes: 2}}
        heartbeat: {interval: 1s}
        """,
        ready_workers=2,
    )
    base = daemon.metrics_url
    wait_until(lambda: healthz(base) == 200, 20, what="healthy")
    os.kill(child_pids(daemon)[0], signal.SIGKILL)
    codes = []

    def replaced() -> bool:
        codes.append(healthz(base))
        return daemon.log.count("ready: queue") == 3

    wait_until(replaced, 20, interval=0.05, what="the replacement ready")
    codes.append(healthz(base))
    assert "died with signal SIGKILL" in daemon.log
    assert len(codes) > 5 and set(codes) == {200}  # default grace 5 s covers the ~1.4 s boot
