"""The scheduler child: one per host. All of them campaign for the lease; the leader
fires schedules and releases dependent jobs. A reload restarts only this child."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from loguru import logger

from naqd.client.client import Client
from naqd.client.errors import NatsAuthError
from naqd.config import Config
from naqd.logs import setup_logging
from naqd.observe.heartbeat import Heartbeat
from naqd.observe.metrics import metrics
from naqd.orphan import watch_parent
from naqd.protocol.resources import ensure_or_refuse, ensure_scheduler_resources
from naqd.protocol.schedule_state import ScheduleState
from naqd.scheduler.code_source import CodeScheduleSource, PausedSource
from naqd.scheduler.dependencies import DependencyResolver
from naqd.scheduler.election import Election
from naqd.scheduler.firing import FireLoop
from naqd.transport.cancelling import cancel_and_wait
from naqd.transport.connection import connect_daemon
from naqd.worker.process import EXIT_CONFIG


def main(config: Config, queue: str, index: int) -> None:
    """Entry point of a spawned scheduler process (`queue`/`index` are unused)."""
    setup_logging(config.logging, role="scheduler")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        code = runner.run(SchedulerProcess(config).run())
    sys.exit(code)


class SchedulerProcess:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stop = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        watch_parent(loop, self.stop)
        beat = Heartbeat(self.config, "scheduler")
        beat.start()
        connecting = loop.create_task(
            connect_daemon(
                self.config.nats.urls, role="scheduler", conn="control",
                nats_config=self.config.nats,
            )
        )  # fmt: skip
        stopping = loop.create_task(self.stop.wait())
        await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            # Stopped while NATS was unreachable: no lease held, nothing to release.
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            logger.info("scheduler stopped before it could reach NATS")
            return 0
        stopping.cancel()
        try:
            nc = connecting.result()
        except NatsAuthError as exc:
            logger.error("{}", exc)
            return EXIT_CONFIG
        js = nc.jetstream()
        if not await ensure_or_refuse(js, self.config, ensure_scheduler_resources):
            await nc.close()
            return EXIT_CONFIG
        state = ScheduleState(js)
        le = self.config.scheduler.leader_election
        election = Election(await state.leader_kv(), le.lease, le.renew_every)
        # Fired jobs are signed like any producer's when a signing key is configured.
        client = await Client.from_config(self.config, nc=nc).connect()
        code = CodeScheduleSource(await state.kv())
        paused = PausedSource(await state.kv())
        fire = FireLoop(
            self.config, client, state, election.may_fire, lambda: election.revision, code, paused
        )
        resolver = DependencyResolver(nc, self.config, election.may_fire)
        tasks = [
            loop.create_task(election.run()),
            loop.create_task(fire.run()),
            loop.create_task(resolver.run()),
            loop.create_task(code.run()),
            loop.create_task(paused.run()),
        ]
        is_leader = metrics().scheduler_is_leader

        def leadership() -> dict[str, object]:
            """Extra heartbeat fields, refreshed each interval with the leader gauge."""
            leading = election.lease.held(time.monotonic())  # incl. its first-fire grace
            is_leader.set(1 if leading else 0)
            return {"leader": leading, "leader_since": election.since if leading else None}

        beat.attach(nc, extra=leadership)
        logger.info(
            "scheduler ready: {} schedule(s), lease {}s",
            len(fire.schedules),
            le.lease,
        )
        stop = loop.create_task(self.stop.wait())
        done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        crashed = [t for t in done if t is not stop]
        for task in crashed:  # a loop must never end on its own: let the supervisor restart us
            exc = task.exception() if not task.cancelled() else None
            logger.error("scheduler task ended unexpectedly: {!r}", exc)
        stop.cancel()
        await fire.stop()
        resolver.stop()
        code.stopped = paused.stopped = True
        election.stopped = True
        await cancel_and_wait(tasks)
        await election.release()
        is_leader.set(0)
        await beat.stop()
        try:
            await asyncio.wait_for(nc.drain(), timeout=5)
        except Exception as exc:
            logger.warning("closing NATS connection: {}", exc)
        logger.info("scheduler stopped: {} fire(s)", fire.fired)
        return 1 if crashed else 0
