"""An in-process worker for tests: the daemon's own worker core (pull, admission,
runner, retries, dead letters, results, timeouts, cancel) on the caller's event loop,
with no child process, supervisor or HTTP endpoint (docs/testing.md)."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from nats.aio.client import Client as NATS

from naqd.config import Config


class Worker:
    """`async with Worker(url, tasks=["myapp.tasks"], queues={"default": {}}) as worker:`

    - `tasks`: modules to import (the config's `tasks.imports`); `queues`: each queue's
      settings as in naq.yaml (default: one queue `default` with the defaults);
      `settings`: any other top-level sections of naq.yaml (`tasks`, `results` ...).
    - or `config=`: a path to a naq.yaml or a loaded `Config` (then `url`, when given,
      replaces its `nats.servers`).
    - `grace`: seconds running jobs get when the worker stops before they are handed
      back (the config's `shutdown.grace_period` when None).
    - `middleware`: objects (or "module:Name" strings) whose job hooks run around each
      job (docs/extending.md); None: the config's `middleware:` list.

    Every queue in the config is served, each by the same `WorkerCore` a daemon's worker
    process runs. No heartbeats are written (`naqd workers` does not list it), metrics
    go to this process's default prometheus registry and are not served, and one of the
    queues runs the advisory mover (jobs whose `max_deliveries` ran out are dead-lettered
    as in the daemon). Schedules and dependent jobs need the scheduler, which this does
    not run; delayed jobs are fired by the server itself and do run.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        tasks: Sequence[str] = (),
        queues: Mapping[str, Mapping[str, Any]] | None = None,
        settings: Mapping[str, Any] | None = None,
        config: str | os.PathLike[str] | Config | None = None,
        grace: float | None = None,
        middleware: Sequence[object] | None = None,
    ) -> None:
        self.config = _config(url, tasks, queues, settings, config)
        self.grace = self.config.shutdown.grace_period if grace is None else grace
        self.middleware = self.config.middleware if middleware is None else middleware
        self.nc: NATS | None = None
        self.cores: dict[str, Any] = {}  # queue name -> naqd.worker.core.WorkerCore
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> Worker:
        from naqd.child.middleware import report
        from naqd.middleware import hooks_of, set_error_reporter
        from naqd.protocol.resources import ensure_or_refuse
        from naqd.transport.connection import connect_daemon
        from naqd.worker.core import WorkerCore

        for module in self.config.tasks.imports:
            importlib.import_module(module)  # an import error is the test's to see
        hooks = hooks_of(self.middleware)  # one set for every queue, like a daemon's
        if hooks is not None:
            set_error_reporter(report)  # logged, and counted as in a daemon
        nats = self.config.nats
        nc = await asyncio.wait_for(
            connect_daemon(
                nats.urls,
                role="testing-worker",
                nats_config=nats,
                on_reconnect=self._on_reconnect,
                trusted_subjects=True,
            ),
            timeout=10,
        )
        self.nc = nc
        if not await ensure_or_refuse(nc.jetstream(), self.config):
            await nc.close()
            raise RuntimeError("NATS refused naqd's streams (see the log)")
        for i, queue in enumerate(self.config.queues.values()):
            core = WorkerCore(
                nc, self.config, queue, advisories=i == 0, recyclable=False, hooks=hooks
            )
            await core.start()
            self.cores[queue.name] = core
        self._started = True
        return self

    async def stop(self) -> None:
        """Stop pulling; running jobs get `grace` seconds, then are handed back."""
        if not self._started:
            return
        self._started = False
        await asyncio.gather(*(core.stop(self.grace) for core in self.cores.values()))
        if self.nc is not None:
            try:
                await self.nc.flush(timeout=5)
            finally:
                await self.nc.close()

    async def _on_reconnect(self) -> None:
        for core in self.cores.values():
            await core.reset()

    async def __aenter__(self) -> Worker:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- waiting ------------------------------------------------------------------------

    async def drain(self, timeout: float = 10.0) -> None:
        """Return once every queue of this worker has nothing queued and nothing running
        (including jobs waiting for a retry's delay); TimeoutError if work remains after
        `timeout` seconds. Delayed jobs that are not due yet do not count."""
        from naqd.worker.idle import wait_idle

        if self.nc is None or not self._started:
            raise RuntimeError("the worker is not running: use `async with Worker(...)`")
        queues = self.config.queues.values()
        if not await wait_idle(self.nc.jetstream(), queues, self._holds_nothing, timeout):
            running = sum(
                len(c.runner.running) + len(c.runner.backlog) for c in self.cores.values()
            )
            raise TimeoutError(
                f"work remains after {timeout}s: {running} job(s) held by this worker, "
                "or jobs still queued or awaiting a retry"
            )

    def _holds_nothing(self) -> bool:
        return all(core.holds_nothing() for core in self.cores.values())

    # -- what it did --------------------------------------------------------------------

    @property
    def succeeded(self) -> int:
        """Jobs that succeeded in this worker, across its queues."""
        return sum(core.runner.done for core in self.cores.values())

    @property
    def failed(self) -> int:
        """Jobs dead-lettered by this worker (attempts that were retried not counted)."""
        return sum(core.runner.failed for core in self.cores.values())


def _config(
    url: str | None,
    tasks: Sequence[str],
    queues: Mapping[str, Mapping[str, Any]] | None,
    settings: Mapping[str, Any] | None,
    config: str | os.PathLike[str] | Config | None,
) -> Config:
    from naqd.config.loader import load_config, parse_config

    if config is not None:
        if tasks or queues or settings:
            raise TypeError("pass either config= or tasks=/queues=/settings=, not both")
        loaded = config if isinstance(config, Config) else load_config(config)
        if url is not None:
            loaded = replace(loaded, nats=replace(loaded.nats, servers=(url,)))
        return loaded
    if url is None:
        raise TypeError("Worker needs the NATS url (or a config= that names the servers)")
    if isinstance(tasks, str):
        raise TypeError("tasks is a list of modules, e.g. tasks=['myapp.tasks']")
    body: dict[str, Any] = {key: value for key, value in (settings or {}).items()}
    body["nats"] = {**body.get("nats", {}), "servers": [url]}
    body["tasks"] = {**body.get("tasks", {})}
    body["tasks"]["imports"] = [*body["tasks"].get("imports", ()), *tasks]
    body["queues"] = {name: dict(q) for name, q in (queues or {"default": {}}).items()}
    # JSON is YAML: the settings are validated exactly as a naq.yaml would be.
    return parse_config(json.dumps(body), filename="<naqd.testing.Worker>")
