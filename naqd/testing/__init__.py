"""Testing your tasks with naqd (docs/testing.md): `NatsServer`, a throwaway JetStream
server; `Worker`, the daemon's worker core run in your test's event loop; `prepare`,
naqd's streams and buckets created before any worker starts; `job_context`, a task called
directly with `current_job()` answering. The pytest plugin
(`naqd.testing.pytest_plugin`) offers the server and worker as fixtures.

`NatsServer`, `Worker` and `prepare` need the daemon extra (`pip install
'naqd[daemon]'`): the server binary and the worker's dependencies; `job_context` needs
nothing more than the client. Importing this package is cheap; what each name needs is
imported when it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naqd.testing.context import RecordedJob, job_context
    from naqd.testing.server import NatsServer
    from naqd.testing.streams import prepare, prepare_sync
    from naqd.testing.worker import Worker

__all__ = ["NatsServer", "RecordedJob", "Worker", "job_context", "prepare", "prepare_sync"]

_WHERE = {
    "NatsServer": "naqd.testing.server",
    "Worker": "naqd.testing.worker",
    "prepare": "naqd.testing.streams",
    "prepare_sync": "naqd.testing.streams",
    "job_context": "naqd.testing.context",
    "RecordedJob": "naqd.testing.context",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'naqd.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
