"""Folding a dead child's metric files into the archive: totals stay, files go."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from naqd.observe.metricfiles import fold_dead


def write(directory: Path, kind: str, pid: object, name: str, value: float, ts: float = 0.0):
    d = MmapedDict(str(directory / f"{kind}_{pid}.db"))
    d.write_value(mmap_key(name.removesuffix("_total"), name, ["q"], ["a"], "h"), value, ts)
    d.close()


def scrape(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry).decode()


def test_dead_children_leave_their_totals_but_not_their_files(tmp_path: Path) -> None:
    write(tmp_path, "counter", 101, "jobs_total", 3)
    write(tmp_path, "counter", 102, "jobs_total", 4)
    write(tmp_path, "counter", 103, "jobs_total", 5)
    write(tmp_path, "gauge_livesum", 101, "running", 2)
    write(tmp_path, "gauge_mostrecent", 101, "last_fire", 10, ts=100.0)
    write(tmp_path, "gauge_mostrecent", 102, "last_fire", 20, ts=50.0)
    write(tmp_path, "gauge_max", 101, "peak", 7)
    write(tmp_path, "gauge_max", 102, "peak", 9)
    before = scrape(tmp_path)
    assert 'jobs_total{q="a"} 12.0' in before

    assert fold_dead(tmp_path, 101) == 3  # its live gauge went first (mark_process_dead)
    assert fold_dead(tmp_path, 102) == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "counter_103.db",
        "counter_archive.db",
        "gauge_max_archive.db",
        "gauge_mostrecent_archive.db",
    ]
    after = scrape(tmp_path)
    assert 'jobs_total{q="a"} 12.0' in after  # totals never go back
    assert 'last_fire{q="a"} 10.0' in after  # the most recent write wins, not the last fold
    assert 'peak{q="a"} 9.0' in after
    assert "running" not in after  # a dead child's live gauge is gone
    assert fold_dead(tmp_path, 101) == 0
