"""Logging: every line names the process role, queue and pid (journald cannot tell
children apart on a shared stderr).

- text (default): one human line per event;
- json: one flat object per line, `time`, `level`, `message`, then the context that
  applies (`role`, `queue`, `pid`, `job_id`, `task`, and `trace_id`/`span_id` of the
  job's span when tracing is on) and `exception` for a traceback;
- under systemd (stderr is the journal stream named by $JOURNAL_STREAM), every line
  starts with its sd-daemon priority prefix `<N>`, so `journalctl -p warning` works.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from typing import Any

from loguru import logger

from naqd.models import LoggingConfig

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[role]}</cyan>{extra[queue_tag]} pid={process} | {message}"
)

# sd-daemon(3) priorities: syslog's levels.
PRIORITY = {
    "TRACE": 7,
    "DEBUG": 7,
    "INFO": 6,
    "SUCCESS": 5,
    "WARNING": 4,
    "ERROR": 3,
    "CRITICAL": 2,
}
CONTEXT_KEYS = ("role", "queue", "job_id", "task", "trace_id", "span_id")  # pid: the record's

# The job whose code is running: set per job by the worker, read only when a line is
# written. Binding it per job with logger.contextualize (a context manager and a lock)
# cost ~4 us of a ~28 us no-op job (docs/performance.md).
_job: ContextVar[tuple[str, str] | None] = ContextVar("naqd_log_job", default=None)


def log_job(job_id: str, task: str) -> Token[tuple[str, str] | None]:
    """Lines written in this task (and the threads it hands work to) carry `job_id` and
    `task` until `end_log_job(token)`."""
    return _job.set((job_id, task))


def end_log_job(token: Token[tuple[str, str] | None]) -> None:
    _job.reset(token)


# The running job's span, as W3C hex ids: set by the OpenTelemetry middleware around the
# job (naqd/integrations/otel.py), so logs.py never imports OpenTelemetry.
_trace: ContextVar[tuple[str, str] | None] = ContextVar("naqd_log_trace", default=None)


def log_trace(trace_id: str, span_id: str) -> Token[tuple[str, str] | None]:
    """Lines written in this task (and its threads) carry `trace_id` and `span_id` until
    `end_log_trace(token)`."""
    return _trace.set((trace_id, span_id))


def end_log_trace(token: Token[tuple[str, str] | None]) -> None:
    _trace.reset(token)


def add_job_context(record: dict[str, Any]) -> None:
    """loguru patcher (installed by setup_logging; an app that configures loguru itself
    for an in-process worker can install it too): `job_id` and `task` of the running job
    (and its span's `trace_id`, `span_id`) into the record's extra. A value bound with
    `logger.bind` wins, as with contextualize."""
    job = _job.get()
    if job is not None:
        extra = record["extra"]
        extra.setdefault("job_id", job[0])
        extra.setdefault("task", job[1])
        trace = _trace.get()
        if trace is not None:
            extra.setdefault("trace_id", trace[0])
            extra.setdefault("span_id", trace[1])


def priority(level_name: str, level_no: int) -> int:
    """The syslog priority of a loguru level (custom levels by their number)."""
    if level_name in PRIORITY:
        return PRIORITY[level_name]
    for at_least, prio in ((50, 2), (40, 3), (30, 4), (25, 5), (20, 6)):
        if level_no >= at_least:
            return prio
    return 7


def journald_stream(env: Mapping[str, str], fd: int = 2) -> bool:
    """True when `fd` is the stream systemd connected to the journal: $JOURNAL_STREAM is
    "<device>:<inode>" of it (a redirected stderr under systemd does not match)."""
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def with_priority(text: str, prio: int) -> str:
    """Prefix every line (a traceback's too: journald splits on newlines) with `<prio>`."""
    body = text[:-1] if text.endswith("\n") else text
    return "\n".join(f"<{prio}>{line}" for line in body.split("\n")) + "\n"


def json_line(record: Mapping[str, Any]) -> str:
    """One flat JSON object for a loguru record (pure: tests pass a dict)."""
    extra = record.get("extra", {})
    out: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "message": record["message"],
    }
    for key in CONTEXT_KEYS:
        value = extra.get(key)
        if value not in (None, ""):
            out[key] = value
    process = record.get("process")
    if process is not None:
        out["pid"] = process.id
    exc = record.get("exception")
    if exc is not None and exc.type is not None:
        out["exception"] = "".join(traceback.format_exception(exc.type, exc.value, exc.traceback))
    return json.dumps(out, ensure_ascii=False, default=str)


def _sink(render: Callable[[Any], str], journald: bool) -> Callable[[Any], None]:
    def write(message: Any) -> None:
        record = message.record
        text = render(message)
        if journald:
            text = with_priority(text, priority(record["level"].name, record["level"].no))
        sys.stderr.write(text)
        sys.stderr.flush()

    return write


def setup_logging(cfg: LoggingConfig, role: str, queue: str = "") -> None:
    logger.remove()
    logger.configure(
        extra={"role": role, "queue": queue, "queue_tag": f"[{queue}]" if queue else ""},
        patcher=add_job_context,  # type: ignore[arg-type]
    )
    journald = journald_stream(os.environ)
    if cfg.format == "json":
        render = lambda m: json_line(m.record) + "\n"  # noqa: E731
        logger.add(_sink(render, journald), level=cfg.level, format="{message}")
    elif journald:
        logger.add(_sink(str, True), level=cfg.level, format=TEXT_FORMAT, colorize=False)
    else:
        logger.add(sys.stderr, level=cfg.level, format=TEXT_FORMAT, colorize=None)
