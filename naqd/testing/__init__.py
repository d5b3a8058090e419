"""Testing your tasks with naqd (docs/testing.md): `NatsServer`, a throwaway JetStream
server, and `Worker`, the daemon's worker core run in your test's event loop. The pytest
plugin (`naqd.testing.pytest_plugin`) offers both as fixtures.

Needs the daemon extra (`pip install 'naqd[daemon]'`): the server binary and the
worker's dependencies. Importing this package is cheap; what each class needs is
imported when it is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from naqd.testing.server import NatsServer
    from naqd.testing.worker import Worker

__all__ = ["NatsServer", "Worker"]


def __getattr__(name: str) -> Any:
    if name == "NatsServer":
        from naqd.testing.server import NatsServer

        return NatsServer
    if name == "Worker":
        from naqd.testing.worker import Worker

        return Worker
    raise AttributeError(f"module 'naqd.testing' has no attribute {name!r}")
