"""naqd: a job queue daemon for Python on NATS JetStream."""

from naqd.client import (
    Client,
    ConnectError,
    EnqueueError,
    Job,
    JobCancelled,
    JobFailed,
    JobStatus,
    NaqdError,
    QueueInfo,
    QueueNotFound,
    ScheduleError,
    ScheduleInfo,
    ScheduleNotFound,
    SyncClient,
    SyncJob,
)
from naqd.worker.context import JobContext, current_job

__version__ = "0.1.0"
__all__ = [
    "Client",
    "ConnectError",
    "EnqueueError",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobStatus",
    "NaqdError",
    "QueueInfo",
    "QueueNotFound",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SyncClient",
    "SyncJob",
    "current_job",
]
