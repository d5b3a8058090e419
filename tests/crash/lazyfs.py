"""A FUSE filesystem that forgets what was not fsynced, for crash tests.

The model is that of Jepsen's LazyFS, with an ext4-like journal:

- Every call is passed through to a *live* directory, so the processes on the mount
  see an ordinary filesystem.
- Namespace changes (create, mkdir, unlink, rmdir, rename, link, symlink) go into one
  journal in order; any fsync, fdatasync or directory fsync commits the whole journal
  (ext4 has one journal for the filesystem).
- File data reaches the *durable* directory only when that file is fsynced (or written
  through an O_SYNC/O_DSYNC descriptor): only its dirty byte range is copied, and its
  size is set to the live size. Data written to other files stays unsynced.

A crash is: kill every process using the mount, unmount, and start the filesystem
again. A start copies the durable directory into a fresh live one, so whatever was not
synced is gone, as after a power cut. The durable directory is never fsynced for real:
the simulated power cut is the only one that matters here.

Reading `/.lazyfs` on the mount returns counters as JSON (fsyncs seen, commits, the
time of the last commit), so a test can wait for "a sync happened after this point"
without sleeping; writing `writeback` to it flushes everything, as the kernel's own
writeback does within about 30 s on Linux.

Run: python -m tests.crash.lazyfs DURABLE_DIR LIVE_DIR MOUNTPOINT
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

CONTROL = "/.lazyfs"

Op = tuple[Any, ...]


class Journal:
    """The durable side: namespace operations waiting for a commit, dirty data ranges
    per live inode, and how to apply both to the durable directory. Pure of FUSE, so the
    unit tests drive it directly."""

    def __init__(self, durable: Path, live: Path) -> None:
        self.durable = durable
        self.live = live
        self.pending: list[Op] = []
        self.dirty: dict[int, tuple[int, int]] = {}  # inode -> [lo, hi) written since sync
        self.fsyncs = 0
        self.commits = 0
        self.last_commit = 0.0
        self.lock = threading.Lock()

    # -- recording ------------------------------------------------------------------------

    def record(self, *op: Any) -> None:
        self.pending.append(op)

    def wrote(self, ino: int, offset: int, length: int) -> None:
        lo, hi = self.dirty.get(ino, (offset, offset))
        self.dirty[ino] = (min(lo, offset), max(hi, offset + length))

    def forget(self, ino: int) -> None:
        """The inode is gone from the namespace: its unsynced data goes with it."""
        self.dirty.pop(ino, None)

    # -- commit ---------------------------------------------------------------------------

    def commit_metadata(self) -> None:
        """Apply the journal to the durable tree, in order."""
        ops, self.pending = self.pending, []
        for op in ops:
            _apply(self.durable, op)
        self.commits += 1
        self.last_commit = time.time()

    def sync_file(self, path: str | None, fd: int | None) -> None:
        """fsync(fd): commit the journal, then copy the file's dirty range and size."""
        self.fsyncs += 1
        self.commit_metadata()
        if path is None:
            return  # unlinked while open: nothing of it can survive
        try:
            st = os.fstat(fd) if fd is not None else os.lstat(self.live / path.lstrip("/"))
        except FileNotFoundError:
            return
        self._copy(path, st, fd)

    def writeback(self, under: str = "") -> None:
        """What the kernel's flusher does within ~30 s on Linux: everything goes to disk
        (or only the files below `under`: the flusher picked those first)."""
        self.commit_metadata()
        for dirpath, _dirs, files in os.walk(self.live / under.strip("/")):
            for name in files:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                if st.st_ino in self.dirty:
                    self._copy("/" + os.path.relpath(full, self.live), st, None)

    def _copy(self, path: str, st: os.stat_result, fd: int | None) -> None:
        if not stat.S_ISREG(st.st_mode):
            return
        lo, hi = self.dirty.pop(st.st_ino, (st.st_size, st.st_size))
        target = self.durable / path.lstrip("/")
        src = fd if fd is not None else os.open(self.live / path.lstrip("/"), os.O_RDONLY)
        try:
            dst = os.open(target, os.O_WRONLY | os.O_CREAT, stat.S_IMODE(st.st_mode))
            try:
                hi = min(hi, st.st_size)
                pos = lo
                while pos < hi:
                    chunk = os.pread(src, min(1 << 20, hi - pos), pos)
                    if not chunk:
                        break
                    os.pwrite(dst, chunk, pos)
                    pos += len(chunk)
                os.ftruncate(dst, st.st_size)
            finally:
                os.close(dst)
        finally:
            if fd is None:
                os.close(src)

    def sync_dir(self) -> None:
        self.fsyncs += 1
        self.commit_metadata()

    def counters(self) -> dict[str, int]:
        return {
            "fsyncs": self.fsyncs,
            "commits": self.commits,
            "pending": len(self.pending),
            "last_commit": self.last_commit,
        }


def _apply(root: Path, op: Op) -> None:
    kind = op[0]
    try:
        if kind == "create":
            fd = os.open(root / op[1].lstrip("/"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, op[2])
            os.close(fd)
        elif kind == "mkdir":
            os.mkdir(root / op[1].lstrip("/"), op[2])
        elif kind == "unlink":
            os.unlink(root / op[1].lstrip("/"))
        elif kind == "rmdir":
            shutil.rmtree(root / op[1].lstrip("/"))
        elif kind == "rename":
            os.replace(root / op[1].lstrip("/"), root / op[2].lstrip("/"))
        elif kind == "symlink":
            os.symlink(op[1], root / op[2].lstrip("/"))
        elif kind == "link":
            os.link(root / op[1].lstrip("/"), root / op[2].lstrip("/"))
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError):
        pass  # the durable tree lacks what an earlier, lost operation made: keep going


def boot(durable: Path, live: Path) -> None:
    """A fresh live tree from the durable one: what a machine sees after a power cut."""
    if live.exists():
        shutil.rmtree(live)
    durable.mkdir(parents=True, exist_ok=True)
    shutil.copytree(durable, live, symlinks=True)


def make_operations(journal: Journal) -> Any:
    import mfusepy

    live = journal.live

    def real(path: str) -> str:
        return str(live / path.lstrip("/"))

    def control_bytes() -> bytes:
        return json.dumps(journal.counters()).encode()

    class LazyOps(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True

        def __init__(self) -> None:
            self.sync_fds: set[int] = set()  # descriptors opened O_SYNC / O_DSYNC

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            if path == CONTROL:
                return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": 4096}
            st = os.fstat(fh) if fh is not None else os.lstat(real(path))
            keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
            out = {k: getattr(st, k) for k in keys}
            for k in ("st_atime", "st_mtime", "st_ctime"):
                out[k] = getattr(st, k + "_ns")
            return out

        def access(self, path: str, amode: int) -> int:
            if path != CONTROL and not os.access(real(path), amode):
                raise OSError(errno.EACCES, "")
            return 0

        def readdir(self, path: str, fh: int) -> list[str]:
            return [".", "..", *os.listdir(real(path))]

        def readlink(self, path: str) -> str:
            return os.readlink(real(path))

        def statfs(self, path: str) -> dict[str, int]:
            sv = os.statvfs(real(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            return {
                k: getattr(sv, k) for k in (*keys, "f_files", "f_flag", "f_frsize", "f_namemax")
            }

        # -- namespace: journaled ---------------------------------------------------------

        def mkdir(self, path: str, mode: int) -> int:
            with journal.lock:
                os.mkdir(real(path), mode)
                journal.record("mkdir", path, mode)
            return 0

        def rmdir(self, path: str) -> int:
            with journal.lock:
                os.rmdir(real(path))
                journal.record("rmdir", path)
            return 0

        def unlink(self, path: str) -> int:
            with journal.lock:
                st = os.lstat(real(path))
                os.unlink(real(path))
                if st.st_nlink <= 1:
                    journal.forget(st.st_ino)
                journal.record("unlink", path)
            return 0

        def rename(self, old: str, new: str) -> int:
            with journal.lock:
                try:
                    st = os.lstat(real(new))
                except FileNotFoundError:
                    st = None
                os.replace(real(old), real(new))
                if st is not None and st.st_nlink <= 1 and not stat.S_ISDIR(st.st_mode):
                    journal.forget(st.st_ino)
                journal.record("rename", old, new)
            return 0

        def symlink(self, target: str, source: str) -> int:
            with journal.lock:
                os.symlink(source, real(target))
                journal.record("symlink", source, target)
            return 0

        def link(self, target: str, source: str) -> int:
            with journal.lock:
                os.link(real(source), real(target))
                journal.record("link", source, target)
            return 0

        def chmod(self, path: str, mode: int) -> int:
            os.chmod(real(path), mode)
            return 0

        def chown(self, path: str, uid: int, gid: int) -> int:
            os.lchown(real(path), uid, gid)
            return 0

        def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
            os.utime(real(path), ns=times) if times else os.utime(real(path))
            return 0

        # -- files ------------------------------------------------------------------------

        def create(self, path: str, mode: int, fi: Any = None) -> int:
            with journal.lock:
                fd = os.open(real(path), os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode)
                journal.record("create", path, mode)
            self._note_sync(fd, fi)
            return fd

        def open(self, path: str, flags: int) -> int:
            if path == CONTROL:
                return os.open("/dev/null", os.O_RDWR)
            # Read-write and no O_APPEND whatever was asked: the journal reads the file at
            # fsync, and the kernel already turned appends into offsets.
            strip = os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_APPEND | os.O_ACCMODE
            fd = os.open(real(path), (flags & ~strip & ~os.O_SYNC & ~os.O_DSYNC) | os.O_RDWR)
            if flags & os.O_TRUNC:  # libfuse3 passes O_TRUNC here (atomic_o_trunc)
                with journal.lock:
                    os.ftruncate(fd, 0)
                    journal.wrote(os.fstat(fd).st_ino, 0, 0)
            self._note_sync(fd, flags)
            return fd

        def _note_sync(self, fd: int, flags: Any) -> None:
            if isinstance(flags, int) and flags & (os.O_SYNC | os.O_DSYNC):
                self.sync_fds.add(fd)

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            if path == CONTROL:
                return control_bytes().ljust(4096)[offset : offset + size]
            return os.pread(fh, size, offset)

        def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
            if path == CONTROL:  # "writeback": flush everything, as the kernel would
                command, _, under = data.decode().strip().partition(" ")
                if command == "writeback":
                    with journal.lock:
                        journal.writeback(under)
                return len(data)
            with journal.lock:
                n = os.pwrite(fh, data, offset)
                journal.wrote(os.fstat(fh).st_ino, offset, n)
                if fh in self.sync_fds:
                    journal.sync_file(path, fh)
            return n

        def truncate(self, path: str, length: int, fh: int | None = None) -> int:
            if path == CONTROL:
                return 0
            with journal.lock:
                if fh is not None:
                    os.ftruncate(fh, length)
                    ino = os.fstat(fh).st_ino
                else:
                    os.truncate(real(path), length)
                    ino = os.lstat(real(path)).st_ino
                journal.wrote(ino, length, 0)
            return 0

        def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
            os.posix_fallocate(fh, offset, size)
            return 0

        def flush(self, path: str, fh: int) -> int:
            return 0

        def release(self, path: str, fh: int) -> int:
            self.sync_fds.discard(fh)
            os.close(fh)
            return 0

        def fsync(self, path: str, datasync: int, fh: int) -> int:
            with journal.lock:
                journal.sync_file(path, fh)
            return 0

        def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
            with journal.lock:
                journal.sync_dir()
            return 0

    return LazyOps()


def main(argv: list[str]) -> int:
    import mfusepy

    durable, live, mountpoint = (Path(a) for a in argv)
    boot(durable, live)
    journal = Journal(durable, live)
    mfusepy.FUSE(
        make_operations(journal),
        str(mountpoint),
        foreground=True,
        nothreads=True,
        hard_remove=True,  # no .fuse_hidden renames for files unlinked while open
        fsname="lazyfs",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
