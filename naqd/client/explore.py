"""What the web console and the CLI read about the whole cluster, from NATS alone: the
overview (queues, hosts and their processes), jobs in every state, one job's detail, id
and argument search, dead letters and schedules (docs/console-data.md).

Every read is a few direct gets by subject or sequence, or a walk under a budget that
returns a partial page and a cursor rather than stall (naqd/client/pages.py). No read
touches a worker's path: the console costs workers nothing per job.

Use: `explorer = Explorer(client)` on a connected `Client`; `client.explorer` is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from nats.errors import NoRespondersError
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from naqd.client.errors import ConnectError, DeadLetterNotFound, ProcessNotFound, disconnected
from naqd.client.faults import guarded
from naqd.client.pages import STOP, Page, Stop
from naqd.protocol.deadletter import DeadLetter
from naqd.protocol.envelope import (
    ErrorInfo,
    ResultRecord,
    decode_result,
)
from naqd.protocol.names import (
    RESULTS_BUCKET,
    kv_stream,
    kv_subject,
)

if TYPE_CHECKING:
    from naqd.client.client import Client
    from naqd.client.jobindex import JobIndex
    from naqd.protocol.audit import AuditEntry

JobState = Literal[
    "queued",  # in its queue, not yet taken (or taken, no record yet)
    "delayed",  # a holder under naqd.sched.> the server fires at its time
    "waiting",  # a holder under naqd.deps.> waiting for its parents
    "running",
    "retrying",  # an attempt failed, the next one is due after its backoff
    "succeeded",
    "failed",
    "cancelled",
    "dead",  # in the dead-letter stream
]
JOB_STATES: tuple[str, ...] = (
    "queued", "delayed", "waiting", "running", "retrying",
    "succeeded", "failed", "cancelled", "dead",
)  # fmt: skip
RECORD_STATES = frozenset({"running", "retrying", "succeeded", "failed", "cancelled"})


def _plain(obj: Any) -> dict[str, Any]:
    return asdict(obj)


# -- overview ----------------------------------------------------------------------------


@dataclass
class QueueRow:
    """One queue across the cluster. `queued`: stored, not yet delivered; `running`:
    delivered and not acked (running, a retry waiting out its backoff, or held by a
    worker until a slot frees); `delayed` and
    `waiting`: holders for the queue; `done_per_min` / `failed_per_min`: summed over
    the queue's worker heartbeats (their last minute); `lag`: seconds the oldest queued
    job has waited; `dead_letters`: entries in the dead-letter stream."""

    name: str
    queued: int = 0
    running: int = 0
    delayed: int = 0
    waiting: int = 0
    done_per_min: float = 0.0
    failed_per_min: float = 0.0
    lag: float = 0.0
    paused: bool = False
    paused_until: float | None = None
    dead_letters: int = 0
    processes: int = 0
    concurrency: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class ProcessRow:
    """One live naqd process (a worker, scheduler or dashboard child) from its
    heartbeat. `running`: its current job ids; `memory_rss`: bytes; `recycles`: how
    many times its slot was recycled (max_jobs / max_memory), when it reports it."""

    key: str
    host: str
    pid: int
    role: str
    queues: list[str] = field(default_factory=list)
    index: int = 0
    concurrency: int = 0
    running: list[str] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    done_per_min: float = 0.0
    failed_per_min: float = 0.0
    memory_rss: int | None = None
    recycles: int | None = None
    # Per queue served (a pool serves several): {"done_per_min": .., "failed_per_min": ..}
    queue_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    version: str = ""
    leader: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class HostRow:
    host: str
    processes: list[ProcessRow] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(len(p.running) for p in self.processes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "running": self.running,
            "processes": [p.to_dict() for p in self.processes],
        }


@dataclass
class Overview:
    """The console's front page: every queue and every host, one read of each source."""

    time: float
    queues: list[QueueRow]
    hosts: list[HostRow]
    leader: ProcessRow | None
    dead_letters: int
    server: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "queues": [q.to_dict() for q in self.queues],
            "hosts": [h.to_dict() for h in self.hosts],
            "leader": self.leader.to_dict() if self.leader else None,
            "dead_letters": self.dead_letters,
            "server": self.server,
        }


# -- jobs ------------------------------------------------------------------------------


@dataclass
class JobRow:
    """A job in a listing. `at`: the time that matters for its state (enqueued for
    queued/waiting, run_at for delayed, started for running, finished for final ones,
    dead_at for dead); `error`: "Type: message" of a failed or dead job."""

    id: str
    state: str
    queue: str = ""
    task: str = ""
    at: float | None = None
    attempts: int = 0
    error: str = ""
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class Attempt:
    """One run of a job: its worker and times, and for a failed one its error and
    traceback (plain text). Attempts stored by a naqd older than the console, and a lost
    attempt's end, have no times."""

    number: int
    status: str  # "failed", or the job's status for the last attempt
    worker: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class JobDetail:
    """Everything known about one job. `envelope` is the decoded job (None once it left
    the stream, or "(pickled)" jobs); `args`/`kwargs`/`options` come from it or from the
    dead letter. `result` is the JSON value (pickled results are not loaded: shown as
    text). `parents`: while it waits on them; `dependents`: jobs waiting on this one;
    `schedule`/`tick`: the schedule that fired it (from the job id)."""

    id: str
    state: str
    queue: str = ""
    task: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    envelope: dict[str, Any] | None = None
    encoding: str = "json"
    headers: dict[str, str] = field(default_factory=dict)
    enqueued_at: float | None = None
    run_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    worker: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    result: Any = None
    result_text: str = ""  # the result as readable text (JSON, indented)
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""
    progress: float | None = None
    progress_message: str = ""
    parents: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    schedule: str | None = None
    tick: str | None = None
    dead_letter: DeadLetterRow | None = None
    stream_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = _plain(self)
        d["attempts"] = [a.to_dict() for a in self.attempts]
        d["dead_letter"] = self.dead_letter.to_dict() if self.dead_letter else None
        return d


@dataclass
class DeadLetterRow:
    id: str
    queue: str
    task: str
    reason: str
    error_type: str
    error_message: str
    attempts: int
    dead_at: float
    worker: str = ""
    seq: int = 0
    traceback: str = ""  # only filled by `dead_letter(id)`, not in listings

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def of(cls, e: DeadLetter, *, full: bool = False) -> DeadLetterRow:
        return cls(
            id=e.id, queue=e.queue, task=e.task, reason=e.reason, error_type=e.error.type,
            error_message=e.error.message, attempts=e.attempts, dead_at=e.dead_at,
            worker=e.worker, seq=e.seq, traceback=e.error.traceback if full else "",
        )  # fmt: skip


@dataclass
class ScheduleRow:
    """`origin`: "yaml" (published by the elected scheduler) or "code". `next_run`,
    `last_fired_at`: unix times; `last_job`: the job id of the last fire."""

    name: str
    origin: str
    task: str
    queue: str
    trigger: str
    timezone: str
    enabled: bool = True
    paused: bool = False
    next_run: float | None = None
    last_tick: str | None = None
    last_job: str | None = None
    last_fired_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class SearchEvent:
    """What an argument search yields: a hit (`job` set), or progress (`job` None).
    `scanned` of `total` messages read so far; `done` once the scan ended (`stopped`
    when `stop()` ended it)."""

    job: JobRow | None
    scanned: int
    total: int
    hits: int
    done: bool = False
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job.to_dict() if self.job else None,
            "scanned": self.scanned,
            "total": self.total,
            "hits": self.hits,
            "done": self.done,
            "stopped": self.stopped,
        }


# -- the explorer ----------------------------------------------------------------------


@guarded
class Explorer:
    """The reads of the console and the CLI. Needs a connected Client.

    A long-lived console calls `await explorer.start()` once (and `close()` at the end):
    that keeps an id index of the queued jobs (naqd/client/jobindex.py), so an id search
    and a queued job's detail are a lookup, not a scan. Without it (the CLI) they read
    the queue under a time budget."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.js = client._js
        self.index: JobIndex | None = None

    def _require_connected(self) -> None:
        """Fail at once while the connection is down (naqd/client/faults.py calls it
        before every public read): the console answers 503 now, not after a timeout."""
        if disconnected(self):
            raise ConnectError("no connection to NATS (reconnecting): try again once it is back")

    async def start(self, max_entries: int = 500_000, wait: float = 0.0) -> Explorer:
        """Start the id index; `wait`: seconds to let it catch up (0: in the background)."""
        from naqd.client.jobindex import JobIndex

        if self.index is None:
            self.index = await JobIndex(self.client.nc, max_entries=max_entries).start()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.index.ready.wait(), wait)
        return self

    async def close(self) -> None:
        if self.index is not None:
            await self.index.stop()
            self.index = None

    # overview -----------------------------------------------------------------------

    async def overview(self) -> Overview:
        """Queues, hosts with their processes, the scheduler leader, the dead-letter
        total and the server. Within 300 ms with 100k queued jobs and 10k dead letters
        (docs/performance.md)."""
        from naqd.client import overview as ov

        return await ov.overview(self)

    async def queues(self) -> list[QueueRow]:
        return (await self.overview()).queues

    async def workers(self) -> list[ProcessRow]:
        """Every live process, by host, role, queues and index."""
        from naqd.client import overview as ov

        return await ov.processes(self.js)

    async def hosts(self) -> list[HostRow]:
        from naqd.client import overview as ov

        return ov.by_host(await self.workers())

    # jobs -------------------------------------------------------------------------

    async def list_jobs(
        self,
        *,
        queue: str | None = None,
        state: str | None = None,
        task: str | None = None,
        since: float | None = None,
        until: float | None = None,
        q: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[JobRow]:
        """Jobs in one state (JOB_STATES), filtered by queue, task (exact) and time
        (`since`/`until`, unix times on the row's `at`).

        - queued, delayed, waiting: the jobs stream in queue order (oldest first);
        - running: from the workers' heartbeats;
        - retrying, succeeded, failed, cancelled, and state None (any job with a
          record): the results bucket, newest first;
        - dead: the dead-letter stream, newest first.

        `q` is a job id or id prefix (see `find_jobs`); with `q` the other filters
        still apply. A page may be `partial` (read budget spent): pass `cursor` on.
        ValueError for an unknown state or a foreign cursor."""
        from naqd.client import jobs

        return await jobs.list_jobs(
            self, queue=queue, state=state, task=task, since=since, until=until, q=q,
            cursor=cursor, limit=limit,
        )  # fmt: skip

    async def find_jobs(self, prefix: str, limit: int = 50) -> list[JobRow]:
        """Jobs whose id starts with `prefix`, in any state: an exact id is a handful of
        direct gets; a prefix is matched against the ids of dead letters, holders and
        results, and against the queued jobs' ids (docs/console-data.md)."""
        from naqd.client import jobs

        return await jobs.find_jobs(self, prefix, limit)

    def search_args(
        self,
        query: str,
        *,
        queue: str | None = None,
        states: tuple[str, ...] = ("queued", "delayed", "waiting", "dead"),
        limit: int = 500,
    ) -> ArgSearch:
        """Jobs whose arguments match `query`, as an async iterator of SearchEvent that
        yields each hit as it is found and progress every few thousand messages; call
        `stop()` (or break out) to end it. `key=value` matches a keyword argument, or a
        key of a dict argument, at any depth (`user.id=42` follows a path); the value
        compares as JSON (`42`, `"42"`, `true`) or as its text. A query without `=`
        matches any argument's text. Only jobs whose envelope is still stored can be
        searched: queued, delayed, waiting, running and dead ones."""
        from naqd.client.search import ArgSearch as _ArgSearch

        return _ArgSearch(self, query, queue=queue, states=states, limit=limit)

    async def job_detail(self, job_id: str, scan_budget: float = 0.25) -> JobDetail:
        """One job in any state; JobNotFound when no trace of it exists. ValueError
        for a string that cannot be a job id. A queued job that no worker has taken
        yet has no record: its message is looked for in the queue for `scan_budget`
        seconds (~3,000 jobs per 0.25 s); a job deeper in a long queue is then
        reported not found (docs/console-data.md)."""
        from naqd.client import jobs

        return await jobs.job_detail(self, job_id, scan_budget)

    # dead letters -------------------------------------------------------------------

    async def dead_letters(
        self,
        *,
        queue: str | None = None,
        task: str | None = None,
        error_type: str | None = None,
        reason: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[DeadLetterRow]:
        """Newest first, filtered by queue, task, error type (the exception class name,
        exact) and reason; `total` is the number of entries of the queue (or all)."""
        return await self.client.dead_letters.page(
            queue=queue, task=task, error_type=error_type, reason=reason, cursor=cursor,
            limit=limit,
        )  # fmt: skip

    async def dead_letter(self, job_id: str) -> DeadLetterRow:
        """One entry with its traceback; DeadLetterNotFound (a JobNotFound) if none."""
        entry = await self.client.dead_letters.get(job_id)
        if entry is None:
            raise DeadLetterNotFound(job_id)
        return DeadLetterRow.of(entry, full=True)

    # schedules ----------------------------------------------------------------------

    async def schedules(self) -> list[ScheduleRow]:
        """YAML schedules (as the elected scheduler published them) and code schedules,
        by name, with next and last fire and paused state. Empty when no scheduler ever
        ran against this NATS."""
        from naqd.client import overview as ov

        return await ov.schedules(self.js)

    async def schedule(self, name: str) -> ScheduleRow:
        """One schedule; ScheduleNotFound if neither YAML nor code has `name`."""
        from naqd.client.schedules import ScheduleNotFound

        for row in await self.schedules():
            if row.name == name:
                return row
        raise ScheduleNotFound(f"no schedule named {name!r}")

    async def schedule_jobs(self, name: str, limit: int = 50) -> list[JobRow]:
        """The jobs a schedule fired (ids `cron.<name>.…`), newest first: the ones with a
        record, dead or queued (via the id index) that are still known."""
        rows = await self.find_jobs(f"cron.{name}.", limit=max(limit, 200))
        rows.sort(key=lambda r: r.at or 0.0, reverse=True)
        return rows[:limit]

    async def queue(self, name: str) -> QueueRow:
        """One queue's row of the overview; QueueNotFound when no worker created it and
        nothing is held or dead for it."""
        from naqd.client.queues import QueueNotFound

        for row in (await self.overview()).queues:
            if row.name == name:
                return row
        raise QueueNotFound(f"queue {name!r} has no consumer: no naqd worker has started for it")

    async def worker(self, key: str) -> ProcessRow:
        """One process by its heartbeat key (`<host>.<role>.<pid>`); ProcessNotFound
        when it is gone."""
        for row in await self.workers():
            if row.key == key:
                return row
        raise ProcessNotFound(key)

    async def audit(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditEntry]:
        """The audit trail, newest first (naqd/client/audit.py's AuditLog.list)."""
        from naqd.client.audit import AuditLog

        return await AuditLog(self.client.nc).list(
            action=action, actor=actor, target=target, since=since, cursor=cursor, limit=limit
        )

    # helpers shared by the modules behind the explorer -----------------------------

    async def record(self, job_id: str) -> tuple[ResultRecord | None, dict[str, Any] | None]:
        """The result record, decoded without loading pickles: (record, raw JSON)."""
        try:
            msg = await self.js.get_msg(
                kv_stream(RESULTS_BUCKET), subject=kv_subject(RESULTS_BUCKET, job_id), direct=True
            )
        except (NotFoundError, KeyNotFoundError, BucketNotFoundError):
            return None, None
        except NoRespondersError:
            # A direct get that nothing answers: no results bucket yet (no daemon ever
            # ran), or NATS is away: tell the two apart.
            if self.client._nc is not None and self.client._nc.is_connected:
                return None, None
            raise
        if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE") or not msg.data:
            return None, None
        return record_of(msg.data)


def record_of(data: bytes) -> tuple[ResultRecord | None, dict[str, Any] | None]:
    """A result record without loading a pickled result (kept as its base64 text)."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(raw, dict):
        return None, None
    try:
        if raw.get("encoding") == "pickle":
            safe = {**raw, "result": None}
            rec = decode_result(json.dumps(safe).encode())
            rec.result = "(pickled result: not loaded)" if raw.get("result") is not None else None
            return rec, raw
        return decode_result(data), raw
    except (ValueError, KeyError, TypeError):
        return None, raw


def row_of_record(rec: ResultRecord) -> JobRow:
    at = rec.finished_at if rec.done else rec.started_at
    err = rec.error or (rec.errors[-1] if rec.errors else None)
    return JobRow(
        id=rec.id, state=rec.status, queue=rec.queue, task=rec.task,
        at=at if at is not None else rec.enqueued_at or None, attempts=rec.attempts,
        error=f"{err.type}: {err.message}" if err and rec.status != "succeeded" else "",
        worker=rec.worker,
    )  # fmt: skip


def schedule_of(job_id: str) -> tuple[str | None, str | None]:
    """(schedule name, tick stamp) of a fired job's id `cron.<name>.<stamp>` or
    `cron.<name>.manual.<stamp>` (naqd/protocol/ticks.py); (None, None) otherwise."""
    head, _, rest = job_id.partition(".")
    name, _, stamp = rest.partition(".")
    if head != "cron" or not name or not stamp:
        return None, None
    return name, stamp


def error_text(err: ErrorInfo | None) -> str:
    return f"{err.type}: {err.message}" if err else ""


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


# Re-exported names the modules behind the explorer use.
__all__ = [
    "JOB_STATES",
    "STOP",
    "Attempt",
    "DeadLetterRow",
    "Explorer",
    "HostRow",
    "JobDetail",
    "JobRow",
    "Overview",
    "Page",
    "ProcessRow",
    "QueueRow",
    "ScheduleRow",
    "SearchEvent",
    "Stop",
]

if TYPE_CHECKING:
    from naqd.client.search import ArgSearch
