"""Producer API: `Client` (async), `SyncClient` (blocking), `Job`, errors."""

from naqd.client.client import Client, Job
from naqd.client.errors import ConnectError, EnqueueError, JobFailed, NaqdError
from naqd.client.sync import SyncClient, SyncJob

__all__ = [
    "Client",
    "ConnectError",
    "EnqueueError",
    "Job",
    "JobFailed",
    "NaqdError",
    "SyncClient",
    "SyncJob",
]
