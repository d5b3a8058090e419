"""The lazy filesystem itself: what survives its crash is exactly what was synced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crash.harness import LazyMount, require_fuse


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[LazyMount]:
    require_fuse()
    mount = LazyMount(tmp_path).start()
    yield mount
    mount.stop()


def write(path: Path, data: bytes, *, sync: bool = False, flags: int = 0) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_file_is_gone_and_synced_one_survives(fs: LazyMount) -> None:
    write(fs.mnt / "lost", b"never synced")
    write(fs.mnt / "kept", b"synced", sync=True)
    assert (fs.mnt / "lost").read_bytes() == b"never synced"  # visible before the crash

    fs.crash()
    fs.restart()

    assert not (fs.mnt / "lost").exists() or (fs.mnt / "lost").read_bytes() == b""
    assert (fs.mnt / "kept").read_bytes() == b"synced"


def test_an_append_after_the_last_fsync_is_dropped(fs: LazyMount) -> None:
    write(fs.mnt / "log", b"one,", sync=True)
    write(fs.mnt / "log", b"two,", sync=True)
    write(fs.mnt / "log", b"three")

    fs.crash()
    fs.restart()

    assert (fs.mnt / "log").read_bytes() == b"one,two,"


def test_o_sync_writes_are_durable_without_fsync(fs: LazyMount) -> None:
    write(fs.mnt / "sync", b"through O_SYNC", flags=os.O_SYNC)

    fs.crash()
    fs.restart()

    assert (fs.mnt / "sync").read_bytes() == b"through O_SYNC"


def test_rename_survives_only_once_a_later_sync_commits_it(fs: LazyMount) -> None:
    (fs.mnt / "dir").mkdir()
    write(fs.mnt / "dir" / "a.tmp", b"state-1", sync=True)
    os.rename(fs.mnt / "dir" / "a.tmp", fs.mnt / "dir" / "a")
    fsync_dir(fs.mnt / "dir")
    write(fs.mnt / "dir" / "b.tmp", b"state-2", sync=True)
    os.rename(fs.mnt / "dir" / "b.tmp", fs.mnt / "dir" / "b")  # no sync after it

    fs.crash()
    fs.restart()

    names = sorted(os.listdir(fs.mnt / "dir"))
    assert names == ["a", "b.tmp"]
    assert (fs.mnt / "dir" / "a").read_bytes() == b"state-1"


def test_truncate_and_unlink_are_undone_unless_synced(fs: LazyMount) -> None:
    write(fs.mnt / "t", b"0123456789", sync=True)
    write(fs.mnt / "u", b"keep me", sync=True)
    os.truncate(fs.mnt / "t", 3)
    os.unlink(fs.mnt / "u")

    fs.crash()
    fs.restart()

    assert (fs.mnt / "t").read_bytes() == b"0123456789"
    assert (fs.mnt / "u").read_bytes() == b"keep me"


def test_writeback_flushes_everything_and_counters_count_syncs(fs: LazyMount) -> None:
    before = fs.counters()
    write(fs.mnt / "w", b"flushed by the kernel")
    write(fs.mnt / "s", b"fsynced", sync=True)
    assert fs.counters()["fsyncs"] == before["fsyncs"] + 1
    fs.writeback()

    fs.crash()
    fs.restart()

    assert (fs.mnt / "w").read_bytes() == b"flushed by the kernel"
    assert fs.crashes == 1
