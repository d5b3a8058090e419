"""The scheduler child: one per host, booted by the shared child boot
(naqd/child/boot.py). All of them campaign for the lease; the leader fires schedules and
releases dependent jobs. A reload restarts only this child."""

from __future__ import annotations

import asyncio
import time

from loguru import logger
from nats.aio.client import Client as NATS

from naqd.child import boot, middleware
from naqd.client.client import Client
from naqd.config import Config
from naqd.exitcodes import EXIT_FAILED, EXIT_OK
from naqd.middleware import Hooks
from naqd.observe.heartbeat import Heartbeat
from naqd.observe.metrics import count_repair, metrics
from naqd.protocol.resources import ensure_or_refuse, ensure_scheduler_resources
from naqd.protocol.schedule_state import ScheduleState
from naqd.scheduler.code_source import CodeScheduleSource, PausedSource
from naqd.scheduler.dependencies import DependencyResolver
from naqd.scheduler.election import Election
from naqd.scheduler.firing import FireLoop
from naqd.transport.cancelling import cancel_and_wait


def main(config: Config, queue: str, index: int) -> None:
    """Entry point of a spawned scheduler process (`queue`/`index` are unused)."""
    boot.main(SchedulerProcess(config))


class SchedulerProcess(boot.Child):
    role = "scheduler"
    conn = "control"
    hooks: Hooks | None = None  # naq.yaml's middleware: fires and missed ticks

    def prepare(self) -> int | None:
        self.hooks, code = middleware.load(self.config)
        return code

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(self.config, "scheduler")

    def connection_role(self) -> str:
        return "scheduler"

    def on_term(self) -> None:
        self.stop.set()  # nothing to hurry: leaving the lease is quick

    async def ensure(self, nc: NATS) -> bool:
        return await ensure_or_refuse(
            nc.jetstream(), self.config, ensure_scheduler_resources, on_repair=count_repair
        )

    async def serve(self, nc: NATS, beat: Heartbeat) -> int:
        loop = asyncio.get_running_loop()
        js = nc.jetstream()
        state = ScheduleState(js)
        le = self.config.scheduler.leader_election
        election = Election(await state.leader_kv(), le.lease, le.renew_every)
        # Fired jobs are signed like any producer's when a signing key is configured.
        client = await Client.from_config(
            self.config, nc=nc, check_queues=False, middleware=self.hooks
        ).connect()
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
        logger.info("scheduler stopped: {} fire(s)", fire.fired)
        return EXIT_FAILED if crashed else EXIT_OK

    async def close(self, nc: NATS) -> None:
        try:
            await asyncio.wait_for(nc.drain(), timeout=5)
        except Exception as exc:
            logger.warning("closing NATS connection: {}", exc)
