"""Every exit code naqd's processes use, in one place: the CLI returns them, children
exit with them, and the supervisor acts on them (naqd/supervisor/policy.py)."""

from __future__ import annotations

EXIT_OK = 0  # done; for a child, a planned exit (drained, recycled, burst finished)
EXIT_FAILED = 1  # a command's operation failed; for a child, a crash
EXIT_TIMEOUT = 2  # a command gave up waiting (e.g. `naqd enqueue --wait`)
EXIT_NOT_FOUND = 3  # no such job, queue, dead letter, delayed job or schedule
EXIT_USAGE = 64  # EX_USAGE: bad command-line usage
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: NATS unreachable, publish not confirmed
# EX_TEMPFAIL: a burst-mode worker recycled with work left (in burst mode, a worker's
# exit 0 means its burst is finished, so a recycle needs a code of its own).
EXIT_RECYCLED = 75
# EX_CONFIG, as systemd and Vector use it: a configuration or boot error that no restart
# can fix (bad YAML, unreadable key file, a task module that fails to import, credentials
# the server rejects). The supervisor stops the daemon on it instead of restarting.
EXIT_CONFIG = 78
EXIT_PIPE = 141  # 128 + SIGPIPE: the reader of a command's output went away (`| head`)
