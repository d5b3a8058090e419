"""Every NATS name naqd uses, in one place: the wire format lives here (docs/protocol.md)."""

from __future__ import annotations

JOBS_STREAM = "NAQD_JOBS"
JOBS_SUBJECT_PREFIX = "naqd.jobs"
RESULTS_BUCKET = "naqd_results"

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


# Dead letters: one entry per job (the newest), subject naqd.dlq.<queue>.<job id>.
DLQ_STREAM = "NAQD_DLQ"
DLQ_SUBJECT_PREFIX = "naqd.dlq"
# JetStream's max-deliveries advisories are core NATS messages: this stream keeps them
# until a worker's dead-letter mover has handled them.
ADVISORY_STREAM = "NAQD_ADVISORIES"
ADVISORY_CONSUMER = "dlq-mover"


def dlq_subject(queue: str, job_id: str) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{queue}.{job_id}"


def dlq_filter(queue: str | None = None) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{queue or '*'}.>"


def max_deliveries_advisories() -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.*"
