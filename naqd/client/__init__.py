"""Producer API: `Client` (async), `SyncClient` (blocking), `Job`, typed tasks, errors."""

from naqd.client.client import Client, Job
from naqd.client.control import JobStatus
from naqd.client.delayed import DelayedJob, ServerTooOld
from naqd.client.errors import (
    Conflict,
    ConnectError,
    DeadLetterNotFound,
    EnqueueError,
    JobCancelled,
    JobFailed,
    JobNotFound,
    NaqdError,
    NatsAuthError,
    PayloadTooLarge,
    ProcessNotFound,
    ResultTimeout,
    Unavailable,
)
from naqd.client.queues import QueueInfo, QueueNotFound
from naqd.client.readiness import NotInitialized
from naqd.client.schedules import ScheduleInfo, ScheduleNotFound
from naqd.client.sync import SyncClient, SyncJob
from naqd.client.tasks import AsyncTask, SyncTask, Task, task
from naqd.protocol.schedules import ScheduleError

__all__ = [
    "AsyncTask",
    "Client",
    "Conflict",
    "ConnectError",
    "DeadLetterNotFound",
    "DelayedJob",
    "EnqueueError",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "NaqdError",
    "NatsAuthError",
    "NotInitialized",
    "PayloadTooLarge",
    "ProcessNotFound",
    "QueueInfo",
    "QueueNotFound",
    "ResultTimeout",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "ServerTooOld",
    "SyncClient",
    "SyncJob",
    "SyncTask",
    "Task",
    "Unavailable",
    "task",
]
