"""Producer API: `Client` (async), `SyncClient` (blocking), `Job`, errors."""

from naqd.client.client import Client, Job
from naqd.client.delayed import DelayedJob, ServerTooOld
from naqd.client.errors import ConnectError, EnqueueError, JobFailed, NaqdError
from naqd.client.sync import SyncClient, SyncJob

__all__ = [
    "Client",
    "ConnectError",
    "DelayedJob",
    "EnqueueError",
    "Job",
    "JobFailed",
    "NaqdError",
    "ServerTooOld",
    "SyncClient",
    "SyncJob",
]
