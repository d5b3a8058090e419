"""Job envelopes and result records: encoding and decoding, no I/O.

A job is one JSON object (or a cloudpickled dict in opt-in pickle mode); a result is
always JSON, except that a pickle-mode job's return value travels pickled and base64'd.
"""

from __future__ import annotations

import base64
import importlib
import json
import math
import re
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from json.scanner import make_scanner
from typing import TYPE_CHECKING, Any, Literal

from naqd.protocol.jsonsafe import check_arguments
from naqd.protocol.names import PROTOCOL_VERSION
from naqd.protocol.options import check_backoff, exception_names

if TYPE_CHECKING:
    from naqd.protocol.signing import Keyring

RESULT_SIGNING_LABEL = "pickle-result"  # keeps result and job signatures apart

Encoding = Literal["json", "pickle"]
# Job ids are KV keys and subject tokens: dots only between non-empty parts.
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_\-=]+(\.[A-Za-z0-9_\-=]+)*$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TASK_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


# One encoder for every job and result: json.dumps with any option builds a new
# JSONEncoder per call, a measurable share of an enqueue and of a stored result.
_compact_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class EnvelopeError(ValueError):
    """A message that is not a valid naqd job; it can never succeed, so it is not retried.

    `job_id` and `task` are what could still be read from a refused envelope (a valid id,
    a string task), so its record and dead letter can name the job; None and "" if not."""

    job_id: str | None = None
    task: str = ""


# Envelope and ResultRecord are built once or twice per job: plain slotted dataclasses
# (treat them as immutable; use dataclasses.replace) construct 3x faster than frozen ones.
@dataclass(slots=True)
class Envelope:
    id: str
    task: str
    queue: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    enqueued_at: float = 0.0
    retries: int | None = None
    timeout: float | None = None
    result_ttl: float | None = None
    backoff: Any = None  # list of seconds, or {strategy, base, max, jitter} (options.py)
    retry_on: tuple[str, ...] | None = None
    dont_retry_on: tuple[str, ...] | None = None
    v: int = PROTOCOL_VERSION

    def to_dict(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies every argument (a hot path).
        d: dict[str, Any] = {
            "v": self.v,
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "enqueued_at": self.enqueued_at,
        }
        for key in ("retries", "timeout", "result_ttl", "backoff"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        for key in ("retry_on", "dont_retry_on"):
            names = getattr(self, key)
            if names is not None:
                d[key] = list(names)
        return d


def valid_job_id(job_id: object) -> bool:
    """Usable as a KV key, a subject token and a Nats-Msg-Id (1-200 characters)."""
    return isinstance(job_id, str) and len(job_id) <= 200 and JOB_ID_RE.match(job_id) is not None


def validate_job_id(job_id: str) -> str:
    """Job ids become KV keys and Nats-Msg-Id values, so they must be subject-safe."""
    if not valid_job_id(job_id):
        raise ValueError(
            f"invalid job_id {job_id!r}: use 1-200 characters from A-Z a-z 0-9 _ - = "
            "and single dots between them"
        )
    return job_id


def validate_task(task: str) -> str:
    if not isinstance(task, str) or not TASK_RE.match(task):
        raise ValueError(f"invalid task name {task!r}: expected 'module:qualname'")
    return task


def validate_queue(queue: str) -> str:
    if not isinstance(queue, str) or not QUEUE_RE.match(queue):
        raise ValueError(f"invalid queue name {queue!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return queue


def validate_priority(level: str | None) -> str | None:
    """A priority level is a subject token (`naqd.jobs.<queue>.<level>`)."""
    if level is not None and (not isinstance(level, str) or not QUEUE_RE.match(level)):
        raise ValueError(f"invalid priority {level!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return level


def validate_option(name: str, value: float | None) -> float | None:
    """Retries, timeout and result_ttl: None (the queue's default) or >= 0."""
    if value is not None and (isinstance(value, bool) or not value >= 0):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def load_cloudpickle() -> Any:
    """cloudpickle, imported on first use: only pickle mode needs it, and a client
    installed without it says which extra brings it."""
    try:
        return importlib.import_module("cloudpickle")
    except ImportError:
        raise ModuleNotFoundError(
            "serializer='pickle' needs cloudpickle: pip install 'naqd[pickle]' "
            "(the daemon extra, 'naqd[daemon]', includes it)",
            name="cloudpickle",
        ) from None


def encode_job(env: Envelope, encoding: Encoding = "json") -> bytes:
    d = env.to_dict()
    if encoding == "pickle":
        blob: bytes = load_cloudpickle().dumps(d)
        return blob
    return encode_job_dict(d)


def encode_job_dict(d: dict[str, Any]) -> bytes:
    """JSON of `Envelope.to_dict()` of a checked envelope, maybe with other id, args and
    enqueued_at (enqueue_many varies only those)."""
    check_arguments(d["task"], d["args"], d["kwargs"])  # strict: nothing silently converted
    try:
        return _compact_json(d).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"job arguments for {d['task']} are not JSON-serializable ({exc}); "
            "pass plain JSON values or use tasks.serializer: pickle"
        ) from exc


def decode_job(data: bytes, encoding: str = "json") -> Envelope:
    """Decode and validate; anything malformed raises EnvelopeError, never something else."""
    try:
        if encoding == "pickle":
            import pickle

            raw = pickle.loads(data)
        elif encoding == "json":
            # From str: json.loads(bytes) first sniffs the encoding (UTF-8 is the wire's).
            raw = _json_object(data if isinstance(data, str) else data.decode())
        else:
            raise EnvelopeError(f"unknown encoding {encoding!r}")
    except EnvelopeError:
        raise
    except Exception as exc:
        raise EnvelopeError(f"cannot decode job payload: {exc}") from exc
    if not isinstance(raw, dict):
        raise EnvelopeError("job payload is not an object")
    try:
        return _envelope(raw)
    except EnvelopeError as exc:
        # Refused, but maybe still addressable: name the job in its record and dead letter.
        job_id, task = raw.get("id"), raw.get("task")
        exc.job_id = job_id if valid_job_id(job_id) else None
        exc.task = task[:200] if isinstance(task, str) else ""
        raise


def _envelope(raw: dict[str, Any]) -> Envelope:
    """The checks of decode_job; `null` means absent for every optional field."""
    get = raw.get
    v = get("v")
    if v is not None and (v != PROTOCOL_VERSION or type(v) is bool):
        hint = " (the number 1, not a string)" if v == str(PROTOCOL_VERSION) else ""
        raise EnvelopeError(f"unsupported envelope version {v!r}{hint}")
    try:
        task, queue, job_id = raw["task"], raw["queue"], raw["id"]
    except KeyError as exc:
        raise EnvelopeError(f"job payload misses the {exc.args[0]!r} field") from None
    args, kwargs = get("args"), get("kwargs")
    if type(task) is not str or task not in _GOOD_NAMES:
        if not isinstance(task, str) or not TASK_RE.match(task):
            raise EnvelopeError(f"invalid task name {task!r} (expected 'module:qualname')")
        _remember(task)
    if type(args) is not list:
        if args is not None and not isinstance(args, list):
            raise EnvelopeError("args must be a list (or null)")
        args = args or ()
    if type(kwargs) is not dict:
        if kwargs is not None and not isinstance(kwargs, dict):
            raise EnvelopeError("kwargs must be an object (or null)")
        kwargs = kwargs or {}
    retries, timeout, result_ttl = get("retries"), get("timeout"), get("result_ttl")
    # Options are read whatever else the envelope holds; each check runs only when set.
    backoff, retry_on, dont_retry_on = get("backoff"), get("retry_on"), get("dont_retry_on")
    try:
        validate_job_id(job_id)
        if type(queue) is not str or queue not in _GOOD_NAMES:
            _remember(validate_queue(queue))
        if backoff is not None:
            backoff = check_backoff(backoff)
        if retry_on is not None:
            retry_on = exception_names(retry_on)
        if dont_retry_on is not None:
            dont_retry_on = exception_names(dont_retry_on)
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from None
    enqueued_at = get("enqueued_at")
    return Envelope(
        id=job_id,
        task=task,
        queue=queue,
        args=tuple(args),
        kwargs=kwargs,
        enqueued_at=enqueued_at if type(enqueued_at) is float else _num(enqueued_at, 0.0),
        retries=None if retries is None else _opt_int(retries),
        timeout=None if timeout is None else _opt_num(timeout),
        result_ttl=None if result_ttl is None else _opt_num(result_ttl),
        backoff=backoff,
        retry_on=retry_on,
        dont_retry_on=dont_retry_on,
    )


_decoder = json.JSONDecoder()
_json_decode = _decoder.decode
_scan = make_scanner(_decoder)  # type: ignore[arg-type]  # typeshed types the context as the class


def _json_object(text: str) -> Any:
    """json.loads of a job's text, through the C scanner directly: JSONDecoder.decode adds
    two whitespace regexes and two Python calls (~0.5 us of a 1.6 us decode). Text the
    scanner does not take whole (leading or trailing whitespace, nothing at all) goes
    to the decoder, which accepts it or raises its usual error."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _json_decode(text)
    if end != len(text):
        return _json_decode(text)
    return value


# Task and queue names already validated in this process: a worker sees the same few
# names over and over, and the regex was a measurable share of a short job's cost.
# Only exact `str` values are looked up (an unhashable value must not raise here).
_GOOD_NAMES: dict[str, None] = {}
_MAX_GOOD_NAMES = 10_000


def _remember(name: str) -> None:
    if len(_GOOD_NAMES) >= _MAX_GOOD_NAMES:
        _GOOD_NAMES.clear()
    _GOOD_NAMES[name] = None


def _num(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default
    )


def _opt_num(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EnvelopeError(f"expected a non-negative number, got {value!r}")
    return float(value)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)  # 2.0 is the integer 2 to JSON (and to docs/schemas)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EnvelopeError(f"expected a non-negative integer, got {value!r}")
    return value


# --- results -------------------------------------------------------------------------

# "retrying": an attempt failed and a retry is due; `errors` lists every failed attempt.
Status = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class ErrorInfo:
    """One failed attempt: what it raised, and (since issue 19's console) which worker
    ran it and when; the last three are empty for an error no run produced."""

    type: str
    message: str
    traceback: str = ""
    worker: str = ""
    started_at: float | None = None
    finished_at: float | None = None


def error_info(d: dict[str, Any]) -> ErrorInfo:
    """An error entry as stored; keys a newer writer may add are ignored."""
    return ErrorInfo(
        str(d.get("type", "")),
        str(d.get("message", "")),
        str(d.get("traceback", "")),
        str(d.get("worker", "")),
        d.get("started_at"),
        d.get("finished_at"),
    )


def error_dict(e: ErrorInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"type": e.type, "message": e.message, "traceback": e.traceback}
    if e.worker:
        d["worker"] = e.worker
    if e.started_at is not None:
        d["started_at"] = e.started_at
    if e.finished_at is not None:
        d["finished_at"] = e.finished_at
    return d


@dataclass(slots=True)
class ResultRecord:
    id: str
    status: Status
    result: Any = None
    error: ErrorInfo | None = None
    attempts: int = 0
    task: str = ""
    queue: str = ""
    enqueued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    worker: str = ""
    encoding: Encoding = "json"
    errors: tuple[ErrorInfo, ...] = ()  # one per failed attempt, oldest first
    progress: float | None = None  # 0..1, set by the job (naqd.current_job().progress)
    progress_message: str = ""
    args: list[Any] | None = None  # the job's arguments, kept with `results.keep_args`
    kwargs: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.status in FINAL_STATUSES


def encode_result(rec: ResultRecord, keyring: Keyring | None = None) -> bytes:
    """`keyring` signs a pickled result, so a producer loads only what a worker wrote."""
    if (
        rec.encoding == "json"
        and rec.error is None
        and not rec.errors
        and rec.progress is None
        and rec.args is None
    ):
        plain = _encode_plain(rec)
        if plain is not None:
            return plain
    d: dict[str, Any] = {
        "id": rec.id,
        "status": rec.status,
        "result": rec.result,
        "attempts": rec.attempts,
        "task": rec.task,
        "queue": rec.queue,
        "enqueued_at": rec.enqueued_at,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "worker": rec.worker,
        "encoding": rec.encoding,
    }
    if rec.encoding == "pickle":
        blob = load_cloudpickle().dumps(rec.result)
        d["result"] = base64.b64encode(blob).decode()
        if keyring is not None:
            d["result_sig"] = keyring.sign(blob, RESULT_SIGNING_LABEL)
    if rec.progress is not None:
        d["progress"] = rec.progress
        d["progress_message"] = rec.progress_message
    if rec.args is not None:
        d["args"] = rec.args
        d["kwargs"] = rec.kwargs or {}
    if rec.error is not None:
        d["error"] = error_dict(rec.error)
    if rec.errors:
        d["errors"] = [error_dict(e) for e in rec.errors]
    try:
        return _compact_json(d).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"task result is not JSON-serializable: {exc}") from exc


_str = encode_basestring_ascii  # what the compact encoder does with a str, quotes included
_float = float.__repr__  # and with a finite float


def _encode_plain(rec: ResultRecord) -> bytes | None:
    return encode_plain(
        rec.id,
        rec.status,
        rec.result,
        rec.attempts,
        rec.task,
        rec.queue,
        rec.enqueued_at,
        rec.started_at,
        rec.finished_at,
        rec.worker,
    )


def encode_plain(
    job_id: str,
    status: str,
    result: Any,
    attempts: int,
    task: str,
    queue: str,
    enqueued: Any,
    started: Any,
    finished: Any,
    worker: str,
) -> bytes | None:
    """The record of a job with no error, no errors before, no progress and a JSON
    result, as one f-string: the same bytes as encode_result's general path at under half
    its cost (one per job, docs/performance.md). None: a field it does not handle (then
    build the ResultRecord and use encode_result)."""
    if (
        type(enqueued) is not float
        or type(started) is not float
        or type(finished) is not float
        or type(attempts) is not int
        or not (math.isfinite(enqueued) and math.isfinite(started) and math.isfinite(finished))
    ):
        return None
    if result is None:
        value = "null"
    else:
        try:
            value = _compact_json(result)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"task result is not JSON-serializable: {exc}") from exc
    return (
        f'{{"id":{_str(job_id)},"status":{_str(status)},"result":{value},'
        f'"attempts":{attempts},"task":{_str(task)},"queue":{_str(queue)},'
        f'"enqueued_at":{_float(enqueued)},"started_at":{_float(started)},'
        f'"finished_at":{_float(finished)},"worker":{_str(worker)},"encoding":"json"}}'
    ).encode()


def decode_result(
    data: bytes, *, allow_pickle: bool = False, keyring: Keyring | None = None
) -> ResultRecord:
    """With `keyring`, a pickled result is loaded only if a worker's signature checks."""
    d = json.loads(data)
    err = d.get("error")
    result = d.get("result")
    encoding = d.get("encoding", "json")
    if encoding == "pickle" and result is not None:
        if not allow_pickle:
            raise ValueError("result is pickled; pass allow_pickle=True to load it")
        import pickle

        blob = base64.b64decode(result)
        if keyring is not None:
            keyring.verify(blob, d.get("result_sig"), RESULT_SIGNING_LABEL)
        result = pickle.loads(blob)
    return ResultRecord(
        id=d["id"],
        status=d["status"],
        result=result,
        error=error_info(err) if err else None,
        attempts=d.get("attempts", 0),
        task=d.get("task", ""),
        queue=d.get("queue", ""),
        enqueued_at=d.get("enqueued_at", 0.0),
        started_at=d.get("started_at"),
        finished_at=d.get("finished_at"),
        worker=d.get("worker", ""),
        encoding=encoding,
        errors=tuple(error_info(e) for e in d.get("errors") or ()),
        progress=d.get("progress"),
        progress_message=d.get("progress_message", ""),
        args=d.get("args"),
        kwargs=d.get("kwargs"),
    )
