"""naqd: a job queue daemon for Python on NATS JetStream."""

from naqd.client import (
    Client,
    ConnectError,
    EnqueueError,
    Job,
    JobFailed,
    NaqdError,
    ScheduleError,
    ScheduleInfo,
    ScheduleNotFound,
    SyncClient,
    SyncJob,
)

__version__ = "0.1.0"
__all__ = [
    "Client",
    "ConnectError",
    "EnqueueError",
    "Job",
    "JobFailed",
    "NaqdError",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SyncClient",
    "SyncJob",
]
