"""Mounting the lazy filesystem (tests/crash/lazyfs.py) for a test, and crashing it."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.natsserver import wait_until

REPO = Path(__file__).resolve().parent.parent.parent


@functools.cache
def fuse_missing() -> str:
    """Why a FUSE filesystem cannot be mounted here, or "" when it can (tried once per
    process: a container without the right to mount has /dev/fuse and still fails)."""
    if shutil.which("fusermount3") is None:
        return "fusermount3 not found (apt-get install fuse3)"
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        return f"/dev/fuse cannot be opened: {exc}"
    os.close(fd)
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"mfusepy/libfuse3 unavailable: {exc}"
    with tempfile.TemporaryDirectory(prefix="lazyfs-probe-") as tmp:
        probe = LazyMount(Path(tmp))
        try:
            probe.start()
        except (RuntimeError, AssertionError) as exc:
            return f"mounting a FUSE filesystem failed: {str(exc)[-300:]}"
        probe.stop()
    return ""


def require_fuse() -> None:
    why = fuse_missing()
    if why:
        pytest.skip(f"crash tests need a FUSE mount: {why}")


class LazyMount:
    """One lazy filesystem under `root`: durable/ (what survives), live/ (what the
    processes see, rebuilt at every start) and mnt/ (the mount point)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.durable = root / "durable"
        self.live = root / "live"
        self.mnt = root / "mnt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.crashes = 0

    def start(self) -> LazyMount:
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._log = open(self.root / "lazyfs.log", "ab")  # noqa: SIM115 - closed in _unmount
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash.lazyfs",
                str(self.durable),
                str(self.live),
                str(self.mnt),
            ],
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._mounted, 60.0, what="lazy filesystem mounted")
        return self

    def _mounted(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.root / "lazyfs.log").read_text(errors="replace")
            raise RuntimeError(f"lazyfs exited with {self.proc.returncode}: {log[-2000:]}")
        return os.path.ismount(self.mnt)

    def counters(self) -> dict[str, float]:
        raw = (self.mnt / ".lazyfs").read_bytes()
        return json.loads(raw.strip())  # type: ignore[no-any-return]

    def wait_for_sync_round(self, interval: float, timeout: float = 60.0) -> None:
        """Until a commit 1.5 intervals from now: a server that syncs every `interval`
        has then finished a whole round that began after this call."""
        after = time.time() + 1.5 * interval
        wait_until(lambda: self.counters()["last_commit"] > after, timeout, what="a sync round")

    def writeback(self, under: str = "") -> None:
        """Flush everything (below `under`), as the kernel's writeback would in ~30 s."""
        (self.mnt / ".lazyfs").write_bytes(f"writeback {under}".encode())

    def crash(self) -> None:
        """The power cut: every process on the mount must be dead already. Unsynced
        data is dropped; start() brings the filesystem back with what was synced."""
        self._unmount()
        self.crashes += 1
        shutil.rmtree(self.live, ignore_errors=True)

    def restart(self) -> LazyMount:
        return self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._unmount()

    def _unmount(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 5.0
        while True:
            done = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True)
            if done.returncode == 0 or not os.path.ismount(self.mnt):
                break
            if time.monotonic() > deadline:  # a straggler holds a file: detach anyway
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True)
                break
            time.sleep(0.05)
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._log.close()
