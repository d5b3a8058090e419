"""Every NATS name naqd uses, in one place: the wire format lives here (docs/protocol.md)."""

from __future__ import annotations

JOBS_STREAM = "NAQD_JOBS"
JOBS_SUBJECT_PREFIX = "naqd.jobs"
RESULTS_BUCKET = "naqd_results"
HEARTBEATS_BUCKET = "naqd_heartbeats"

# Headers on job messages.
HDR_MSG_ID = "Nats-Msg-Id"
HDR_ENCODING = "Naqd-Encoding"  # "json" (default when absent) | "pickle"
HDR_TTL = "Nats-TTL"

PROTOCOL_VERSION = 1


def job_subject(queue: str) -> str:
    return f"{JOBS_SUBJECT_PREFIX}.{queue}"


def consumer_name(queue: str) -> str:
    return f"q-{queue}"


def result_subject(job_id: str) -> str:
    """The KV subject a result record is written to (KV is a stream under the hood)."""
    return f"$KV.{RESULTS_BUCKET}.{job_id}"


def pull_subject(queue: str) -> str:
    return f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer_name(queue)}"


def heartbeat_key(host: str, role: str, pid: int) -> str:
    """`<host>.<role>.<pid>`, the host reduced to characters a KV key token allows."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in host) or "unknown"
    return f"{safe}.{role}.{pid}"
