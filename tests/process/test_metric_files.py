"""Recycles, resident memory and the metric files of dead children, through real scrapes
of a real daemon's /metrics."""

from __future__ import annotations

from pathlib import Path

from naqd import SyncClient
from tests.natsserver import wait_until
from tests.process.test_observe import child_pids, scrape, value


def file_pids(directory: Path) -> set[str]:
    return {p.stem.rsplit("_", 1)[1] for p in directory.glob("*.db")}


def test_recycled_workers_are_counted_and_leave_no_files(
    daemon_factory, nats_server, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    daemon = daemon_factory(
        """
        tasks: {imports: [tests.tasks]}
        scheduler: {enabled: false}
        queues:
          default: {concurrency: 1, processes: 1, max_jobs_per_process: 3, max_jobs_jitter: 0}
        heartbeat: {interval: 1s}
        """,
        ready_workers=1,
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
    )
    base = daemon.metrics_url
    with SyncClient(nats_server.url) as client:
        for i in range(10):
            assert client.enqueue("tests.tasks:add", i, 1).result(timeout=30) == i + 1
    daemon.wait_for_log("ready: queue", count=4)  # recycled after jobs 3, 6 and 9
    job = dict(queue="default", task="tests.tasks:add")
    wait_until(
        lambda: value(scrape(base), "naqd_jobs_succeeded_total", **job) == 10,
        15,
        what="every job counted, across 4 processes",
    )
    samples = scrape(base)
    assert value(samples, "naqd_jobs_started_total", **job) == 10
    assert value(samples, "naqd_worker_recycles_total", queue="default", reason="max_jobs") == 3
    # The dead children's files were folded into the archive and removed.
    live = {str(pid) for pid in child_pids(daemon)}
    wait_until(lambda: file_pids(metrics_dir) <= live | {"archive"}, 10, what="files folded")
    rss = value(
        samples,
        "naqd_child_resident_memory_bytes",
        role="worker",
        queue="default",
        index="0",
        pool="",
    )
    assert rss is not None and 10 * 2**20 < rss < 2**31
