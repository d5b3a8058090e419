"""pytest fixtures for testing tasks with naqd (docs/testing.md), registered through the
`pytest11` entry point, so installing naqd makes them available:

- `naqd_server`: a fresh JetStream nats-server for the test (`naqd.testing.NatsServer`);
- `naqd_url`: its URL;
- `naqd_worker`: a factory of in-process workers on that server:
  `async with naqd_worker(tasks=["myapp.tasks"]) as worker: ...`.

Loaded in every pytest run of an environment with naqd installed, so importing it must
stay cheap and must work in a client-only install: naqd.testing is imported only when a
fixture is used."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from naqd.testing.server import NatsServer
    from naqd.testing.worker import Worker


@pytest.fixture
def naqd_server() -> Iterator[NatsServer]:
    """A JetStream nats-server of its own for each test, stopped (store removed) after."""
    from naqd.testing.server import NatsServer

    with NatsServer() as server:
        yield server


@pytest.fixture
def naqd_url(naqd_server: NatsServer) -> str:
    """The URL of `naqd_server`."""
    return naqd_server.url


@pytest.fixture
def naqd_worker(naqd_url: str) -> Callable[..., Worker]:
    """`naqd_worker(tasks=[...], queues={...}, settings={...})` or
    `naqd_worker(config="naq.yaml")`: a `naqd.testing.Worker` on the test's server, to
    use as `async with`."""
    from naqd.testing.worker import Worker

    def make(**kwargs: Any) -> Worker:
        return Worker(naqd_url, **kwargs)

    return make
