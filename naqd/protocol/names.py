"""Every NATS name naqd uses, in one place: the wire format lives here (docs/protocol.md)."""

from __future__ import annotations

JOBS_STREAM = "NAQD_JOBS"
JOBS_SUBJECT_PREFIX = "naqd.jobs"
RESULTS_BUCKET = "naqd_results"
# Holders in NAQD_JOBS that no queue consumer covers (docs/scheduling.md).
DELAYED_SUBJECT_PREFIX = "naqd.sched"  # server-side @at schedules (delayed jobs)
DEPENDENT_SUBJECT_PREFIX = "naqd.deps"  # jobs waiting for their parents
LEADER_BUCKET = "naqd_leader"  # key "scheduler": the lease (bucket TTL = lease)
LEADER_KEY = "scheduler"
HEARTBEATS_BUCKET = "naqd_heartbeats"
SCHEDULES_BUCKET = "naqd_schedules"  # keys "last.<name>", "paused.<name>", "code.<name>"
CODE_SCHEDULE_PREFIX = "code"  # "code.<name>": a schedule created from code (JSON)
PAUSED_SCHEDULE_PREFIX = "paused"  # "paused.<name>": the schedule is paused (any value)
LAST_TICK_PREFIX = "last"  # "last.<name>": the last fired tick (schedule_state.last_value)
YAML_NAMES_KEY = "yaml_names"  # JSON list of the leader's YAML schedule names
# JSON list of the leader's effective YAML schedule definitions (protocol/schedules.py's
# encoding), so every host's console and CLI see them after a reload.
YAML_SCHEDULES_KEY = "yaml_schedules"
RATE_STREAM = "NAQD_RATE"  # counters: "naqd.rate.<queue>.<window>" (queue `rate` limits)
RATE_SUBJECT_PREFIX = "naqd.rate"
UNIQUE_BUCKET = "naqd_unique"  # key = sha256 of a unique key; value {"job_id", "key"}
CANCELS_BUCKET = "naqd_cancels"  # key = job id of a cancelled job (docs/job-control.md)
# The known queues (docs/client.md#known-queues): key = queue name, value JSON
# {"by": "config" | "client", "host", "at"}; daemons write their configured queues, the
# client watches the bucket and refuses an enqueue to a name it does not hold.
QUEUES_BUCKET = "naqd_queues"

# Headers on job messages.
HDR_MSG_ID = "Nats-Msg-Id"
HDR_ENCODING = "Naqd-Encoding"  # "json" (default when absent) | "pickle"
HDR_TTL = "Nats-TTL"
HDR_SCHEDULE = "Nats-Schedule"
HDR_SCHEDULE_TARGET = "Nats-Schedule-Target"
HDR_DEPENDS_ON = "Naqd-Depends-On"  # comma-separated parent job ids
HDR_LEADER_REV = "Naqd-Leader-Rev"  # fencing token on cron-fired jobs
HDR_SIGNATURE = "Naqd-Signature"  # "<key id>:<hex HMAC-SHA256>" (docs/security.md)
HDR_UNIQUE = "Naqd-Unique-Lock"  # the unique-lock KV key a worker releases at the end
# W3C Trace Context and Baggage (docs/protocol.md#trace-context): any producer may set
# them; the worker's span continues the trace (naqd/otel/). Lower case, as the W3C names them.
HDR_TRACEPARENT = "traceparent"  # "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"
HDR_TRACESTATE = "tracestate"  # vendor key=value list, passed on as is
HDR_BAGGAGE = "baggage"  # application key=value list, passed on as is
TRACE_HEADERS = (HDR_TRACEPARENT, HDR_TRACESTATE, HDR_BAGGAGE)
# Headers of JetStream itself that naqd sets or reads.
HDR_INCR = "Nats-Incr"  # counter streams (NAQD_RATE): add this to the subject's value
HDR_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"  # compare-and-set
HDR_PENDING_MESSAGES = "Nats-Pending-Messages"  # on a pull request's status answers
# Atomic batch publish (server >= 2.12, streams with allow_atomic): one commit, one fsync.
HDR_BATCH_ID = "Nats-Batch-Id"
HDR_BATCH_SEQUENCE = "Nats-Batch-Sequence"
HDR_BATCH_COMMIT = "Nats-Batch-Commit"

PROTOCOL_VERSION = 1
# JetStream API level of nats-server 2.12, the first with `Nats-Schedule: @at`.
SCHEDULES_API_LEVEL = 2


def under(prefix: str) -> str:
    """The wildcard for every subject (or KV key) below `prefix`: `naqd.deps` -> `naqd.deps.>`."""
    return f"{prefix}.>"


def job_subject(queue: str) -> str:
    return f"{JOBS_SUBJECT_PREFIX}.{queue}"


def job_subject_queue(subject: str) -> str | None:
    """The queue of `naqd.jobs.<queue>[.<level>]`, None for any other subject."""
    prefix = f"{JOBS_SUBJECT_PREFIX}."
    if not subject.startswith(prefix):
        return None
    return subject[len(prefix) :].split(".", 1)[0] or None


def consumer_name(queue: str) -> str:
    return f"q-{queue}"


DEFAULT_PRIORITY = "default"  # the level on the plain `naqd.jobs.<queue>` subject


def priority_subject(queue: str, level: str | None) -> str:
    """`naqd.jobs.<queue>.<level>`; the default level is the plain queue subject."""
    if level is None or level == DEFAULT_PRIORITY:
        return job_subject(queue)
    return f"{JOBS_SUBJECT_PREFIX}.{queue}.{level}"


def priority_consumer_name(queue: str, level: str) -> str:
    """`q-<queue>~<level>` (`~` cannot occur in queue names, so names never clash)."""
    if level == DEFAULT_PRIORITY:
        return consumer_name(queue)
    return f"q-{queue}~{level}"


def result_subject(job_id: str) -> str:
    """The KV subject a result record is written to (KV is a stream under the hood)."""
    return kv_subject(RESULTS_BUCKET, job_id)


def done_subject(job_id: str) -> str:
    """Core-NATS notice sent after a final result is stored: waiting on it has no race
    (the KV subject itself is delivered to subscribers before the store completes)."""
    return f"naqd.done.{job_id}"


def next_subject(consumer: str) -> str:
    """The pull request subject of a consumer on the jobs stream."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer}"


def pause_advisory_subject(consumer: str) -> str:
    """The server's advisory when a jobs consumer is paused or resumed (nats-server 2.11):
    JSON with `paused` (bool) and `pause_until` (RFC 3339)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{JOBS_STREAM}.{consumer}"


def pull_subject(queue: str) -> str:
    return next_subject(consumer_name(queue))


def purge_subject(stream: str) -> str:
    """The JetStream API request that purges a stream (with a filter in its body)."""
    return f"$JS.API.STREAM.PURGE.{stream}"


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV key is stored under; `>` as the key covers the whole bucket."""
    return f"$KV.{bucket}.{key}"


def rate_subject(queue: str, window: int) -> str:
    """The counter of jobs started in one `rate` window of a queue."""
    return f"{RATE_SUBJECT_PREFIX}.{queue}.{window}"


def delayed_subject(queue: str, job_id: str) -> str:
    return f"{DELAYED_SUBJECT_PREFIX}.{queue}.{job_id}"


def delayed_filter(job_id: str) -> str:
    """The holder of a delayed job, whatever its queue."""
    return f"{DELAYED_SUBJECT_PREFIX}.*.{job_id}"


def dependent_subject(queue: str, job_id: str) -> str:
    return f"{DEPENDENT_SUBJECT_PREFIX}.{queue}.{job_id}"


def holder_msg_id(job_id: str) -> str:
    """Nats-Msg-Id of a holder: not the job id, which the released job itself carries."""
    return f"hold.{job_id}"


def requeue_msg_id(job_id: str, dlq_seq: int) -> str:
    """Nats-Msg-Id of a job put back from the DLQ: a fresh one, or the stream's dedupe
    could drop it as a repeat of the original publish."""
    return f"{job_id}.requeue.{dlq_seq}"


def is_requeue_msg_id(msg_id: str, job_id: str) -> bool:
    """Whether `msg_id` is `requeue_msg_id(job_id, n)`: the one Nats-Msg-Id a worker
    accepts besides the job id itself."""
    prefix = f"{job_id}.requeue."
    rest = msg_id[len(prefix) :]
    return msg_id.startswith(prefix) and rest.isascii() and rest.isdigit()


def heartbeat_key(host: str, role: str, pid: int) -> str:
    """`<host>.<role>.<pid>`, the host reduced to characters a KV key token allows."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in host) or "unknown"
    return f"{safe}.{role}.{pid}"


# Dead letters: one entry per job (the newest), subject naqd.dlq.<queue>.<job id>.
DLQ_STREAM = "NAQD_DLQ"
DLQ_SUBJECT_PREFIX = "naqd.dlq"
# JetStream's max-deliveries advisories are core NATS messages: this stream keeps them
# until a worker's dead-letter mover has handled them.
ADVISORY_STREAM = "NAQD_ADVISORIES"
ADVISORY_CONSUMER = "dlq-mover"


def dlq_subject(queue: str, job_id: str) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{queue}.{job_id}"


def dlq_queue(subject: str) -> str:
    """The queue of a dead-letter subject `naqd.dlq.<queue>.<job id>`: the third token, as
    queue names have no dots and job ids may (`cron.nightly.<tick>`)."""
    return subject.split(".", 3)[2] if subject.count(".") >= 2 else ""


def dlq_filter(queue: str | None = None) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{queue or '*'}.>"


def max_deliveries_advisories() -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"


def code_schedule_key(name: str) -> str:
    return f"{CODE_SCHEDULE_PREFIX}.{name}"


def paused_key(name: str) -> str:
    return f"{PAUSED_SCHEDULE_PREFIX}.{name}"


def last_tick_key(name: str) -> str:
    return f"{LAST_TICK_PREFIX}.{name}"


def cancel_subject(job_id: str) -> str:
    """The KV subject of a cancel record; workers also listen on it in core NATS."""
    return kv_subject(CANCELS_BUCKET, job_id)


def batch_stream(subject: str) -> str | None:
    """The stream a write to `subject` lands in, for the writes naqd sends as atomic
    batches (jobs and their holders, result records); None for any other subject."""
    head = subject.split(".", 2)
    if subject.startswith(f"{JOBS_SUBJECT_PREFIX}.") or (
        subject.startswith((f"{DELAYED_SUBJECT_PREFIX}.", f"{DEPENDENT_SUBJECT_PREFIX}."))
    ):
        return JOBS_STREAM
    if len(head) == 3 and head[0] == "$KV" and head[1] == RESULTS_BUCKET:
        return kv_stream(RESULTS_BUCKET)
    return None


def batch_headers(batch_id: str, seq: int, commit: bool) -> dict[str, str]:
    """The headers that make a message the `seq`-th (from 1) of an atomic batch."""
    headers = {HDR_BATCH_ID: batch_id, HDR_BATCH_SEQUENCE: str(seq)}
    if commit:
        headers[HDR_BATCH_COMMIT] = "1"
    return headers


# Audit trail of operator actions (console and CLI): one message per action,
# subject naqd.audit.<action>, kept for `audit.max_age` (docs/console-data.md).
AUDIT_STREAM = "NAQD_AUDIT"
AUDIT_SUBJECT_PREFIX = "naqd.audit"


def audit_subject(action: str) -> str:
    """`naqd.audit.<action>`, the action reduced to subject-safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in action) or "unknown"
    return f"{AUDIT_SUBJECT_PREFIX}.{safe}"


# JetStream's consumer pause advisories (nats-server >= 2.11): the console's live feed
# hears a queue paused or resumed from any host.
def consumer_pause_advisories() -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.PAUSE.{JOBS_STREAM}.*"


def done_filter() -> str:
    """Every job's done notice (`naqd.done.<id>`; ids may contain dots)."""
    return "naqd.done.>"
