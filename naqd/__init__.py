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
from naqd.middleware import EnqueueMessage, JobInfo, Middleware
from naqd.worker.context import JobContext, current_job

__version__ = "0.1.0"
__all__ = [
    "Client",
    "ConnectError",
    "EnqueueError",
    "EnqueueMessage",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobInfo",
    "JobStatus",
    "Middleware",
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
