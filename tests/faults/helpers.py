"""Counting job runs across worker processes, for the fault scenarios."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path


def runs(directory: Path) -> Counter[int]:
    """How often each job number completed, over every worker process's runs file."""
    counts: Counter[int] = Counter()
    for path in directory.glob("runs-*"):
        counts.update(int(line) for line in path.read_text().split())
    return counts


def worker_pids(directory: Path) -> set[int]:
    """Worker processes that have completed at least one job and are still alive."""
    pids = set()
    for path in directory.glob("runs-*"):
        pid = int(path.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        pids.add(pid)
    return pids


def assert_all_ran(counts: Counter[int], total: int, max_duplicates: int) -> int:
    """Every job ran; at most `max_duplicates` extra runs. Returns the duplicates."""
    missing = sorted(set(range(total)) - set(counts))
    assert not missing, f"{len(missing)} job(s) never ran, e.g. {missing[:10]}"
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= max_duplicates, f"{duplicates} duplicate runs (max {max_duplicates})"
    print(f"{total} jobs, {duplicates} duplicate run(s)")
    return duplicates
