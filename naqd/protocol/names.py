"""Every NATS name naqd uses, in one place: the wire format lives here (docs/protocol.md)."""

from __future__ import annotations

JOBS_STREAM = "NAQD_JOBS"
JOBS_SUBJECT_PREFIX = "naqd.jobs"
RESULTS_BUCKET = "naqd_results"

# Headers on job messages.
HDR_MSG_ID = "Nats-Msg-Id"
HDR_ENCODING = "Naqd-Encoding"  # "json" (default when absent) | "pickle"
HDR_TTL = "Nats-TTL"
HDR_SIGNATURE = "Naqd-Signature"  # "<key id>:<hex HMAC-SHA256>" (docs/security.md)

PROTOCOL_VERSION = 1


def job_subject(queue: str) -> str:
    return f"{JOBS_SUBJECT_PREFIX}.{queue}"


def consumer_name(queue: str) -> str:
    return f"q-{queue}"


def result_subject(job_id: str) -> str:
    """The KV subject a result record is written to (KV is a stream under the hood)."""
    return f"$KV.{RESULTS_BUCKET}.{job_id}"


def done_subject(job_id: str) -> str:
    """Core-NATS notice sent after a final result is stored: waiting on it has no race
    (the KV subject itself is delivered to subscribers before the store completes)."""
    return f"naqd.done.{job_id}"


def pull_subject(queue: str) -> str:
    return f"$JS.API.CONSUMER.MSG.NEXT.{JOBS_STREAM}.{consumer_name(queue)}"
