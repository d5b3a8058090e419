"""Schedules from code: `client.schedule(...)` and friends (docs/job-control.md). The
definitions live in the scheduler's KV bucket; the elected scheduler fires them exactly
like YAML schedules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError

from naqd.client.errors import NaqdError
from naqd.client.tasks import Task
from naqd.models import ScheduleConfig
from naqd.protocol.schedule_state import ScheduleState
from naqd.protocol.schedules import CodeSchedule, ScheduleError, build_schedule, modified
from naqd.protocol.ticks import Trigger

if TYPE_CHECKING:
    from nats.js import JetStreamContext


class ScheduleNotFound(NaqdError):
    """No code schedule has that name."""


@dataclass(frozen=True)
class ScheduleInfo:
    """A code schedule as `list_schedules()` reports it."""

    name: str
    task: str
    cron: str | None
    every: float | None
    timezone: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    paused: bool
    next_run: datetime
    last_tick: str | None
    last_job: str | None
    origin: str = "code"


class ScheduleMixin:
    """Mixed into Client; needs `_js`, `default_queue` and `_require_queue`."""

    _js: JetStreamContext
    default_queue: str

    async def _require_queue(self, queue: str) -> None:  # Client's known-queue check
        raise NotImplementedError

    async def _schedule_state(self) -> ScheduleState:
        state = ScheduleState(self._js)
        try:
            await state.kv()
        except BucketNotFoundError:
            raise NaqdError(
                "the naqd_schedules bucket does not exist yet: start naqd with the "
                "scheduler enabled once before creating schedules from code"
            ) from None
        return state

    async def schedule(
        self,
        name: str,
        task: str | Callable[..., Any],
        *args: Any,
        cron: str | None = None,
        every: float | timedelta | str | None = None,
        timezone: str = "UTC",
        queue: str | None = None,
        missed: str = "run_once",
        jitter: float | timedelta | str | None = None,
        retries: int | None = None,
        timeout: float | timedelta | str | None = None,
        task_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ScheduleInfo:
        """Create or replace the code schedule `name` (idempotent: safe to call at every
        application start). Replacing keeps its paused state and last fired tick. A name
        a YAML schedule uses is refused with ScheduleError."""
        from naqd.client.messages import task_name

        if task_kwargs:
            kwargs = {**kwargs, **task_kwargs}
        if isinstance(task, Task):  # a typed task: its arguments and its own queue
            task.check_arguments(tuple(args), kwargs)
            queue = queue or task.options.queue
        definition = build_schedule(
            name,
            task_name(task),
            tuple(args),
            kwargs,
            cron=cron,
            every=every,
            timezone=timezone,
            queue=queue or self.default_queue,
            missed=missed,
            jitter=jitter,
            retries=retries,
            timeout=timeout,
        )
        await self._require_queue(definition.queue)  # a typo would fire into nowhere
        state = await self._schedule_state()
        if name in await state.yaml_names():
            raise ScheduleError(
                f"schedule {name!r} is defined in naq.yaml; the YAML file is the source of "
                "truth for its names: pick another name for a code schedule"
            )
        await state.code_put(definition)
        return await self._info(state, name)

    async def modify_schedule(self, name: str, **changes: Any) -> ScheduleInfo:
        """Change some fields of a code schedule (cron, every, timezone, args, kwargs,
        queue, missed, jitter, retries, timeout, task); the rest stay. Ticks from before
        the change never fire."""
        state = await self._schedule_state()
        for _ in range(5):  # compare-and-set against concurrent modifies
            current = await state.code_get(name)
            if current is None:
                raise ScheduleNotFound(f"no code schedule named {name!r}")
            if "args" in changes:
                changes["args"] = tuple(changes["args"])
            if "task" in changes:
                from naqd.client.messages import task_name

                changes["task"] = task_name(changes["task"])
            definition = modified(current.schedule, changes)
            if definition.queue != current.schedule.queue:
                await self._require_queue(definition.queue)
            try:
                await state.code_put(definition, last=current.revision)
            except KeyWrongLastSequenceError:
                continue
            return await self._info(state, name)
        raise NaqdError(f"schedule {name!r} keeps changing concurrently; try again")

    async def remove_schedule(self, name: str) -> bool:
        """Delete a code schedule; the scheduler stops firing it within moments. False
        when there was no such schedule."""
        return await (await self._schedule_state()).code_remove(name)

    async def pause_schedule(self, name: str) -> None:
        """Hold a schedule (code or YAML) until `resume_schedule`; ticks meanwhile are
        dropped, never caught up."""
        state = await self._schedule_state()
        await self._require(state, name)
        await state.pause(name)

    async def resume_schedule(self, name: str) -> None:
        state = await self._schedule_state()
        await self._require(state, name)
        await state.resume(name)

    async def trigger_schedule(self, name: str) -> str:
        """Enqueue one run of a YAML or code schedule now; returns its job id
        (`cron.<name>.manual.<stamp>`, apart from every tick's). Paused schedules too:
        a person asked for this run. ScheduleNotFound if no schedule has that name."""
        from naqd.client.options import Options
        from naqd.protocol.ticks import manual_job_id

        definition = await self.schedule_definition(name)
        job_id = manual_job_id(name, datetime.now(UTC))
        options = Options.of(
            {
                "queue": definition.queue,
                "job_id": job_id,
                "retries": definition.retries,
                "timeout": definition.timeout,
            }
        )
        msg = self.shape(  # type: ignore[attr-defined]  # BuildMixin, on Client
            definition.task, definition.args, dict(definition.kwargs), options
        )
        # As an enqueue: the client's middleware sees it (before_enqueue may add headers).
        await self._send(msg, None, job_id)  # type: ignore[attr-defined]
        return job_id

    async def schedule_definition(self, name: str) -> ScheduleConfig:
        """A code schedule's definition, else the YAML one the elected scheduler
        published; ScheduleNotFound if neither has `name`."""
        state = await self._schedule_state()
        code = await state.code_get(name)
        if code is not None:
            return code.schedule
        for s in await state.yaml_schedules():
            if s.name == name:
                return s
        raise ScheduleNotFound(f"no schedule named {name!r}")

    async def get_schedule(self, name: str) -> ScheduleInfo | None:
        state = await self._schedule_state()
        if await state.code_get(name) is None:
            return None
        return await self._info(state, name)

    async def list_schedules(self) -> list[ScheduleInfo]:
        """The code schedules, by name (`naqd schedules` also shows the YAML ones)."""
        state = await self._schedule_state()
        return [await _info_of(state, c) for c in await state.code_list()]

    async def _require(self, state: ScheduleState, name: str) -> None:
        if name in await state.yaml_names():
            return
        if await state.code_get(name) is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")

    async def _info(self, state: ScheduleState, name: str) -> ScheduleInfo:
        code = await state.code_get(name)
        if code is None:
            raise ScheduleNotFound(f"no code schedule named {name!r}")
        return await _info_of(state, code)


async def _info_of(state: ScheduleState, code: CodeSchedule) -> ScheduleInfo:
    s = code.schedule
    last = await state.last_record(s.name)
    now = datetime.now(UTC)
    return ScheduleInfo(
        name=s.name,
        task=s.task,
        cron=s.cron,
        every=s.every,
        timezone=s.timezone,
        queue=s.queue,
        args=s.args,
        kwargs=s.kwargs,
        paused=await state.paused(s.name),
        next_run=Trigger.of(s).next_after(max(now, code.since)),
        last_tick=last.get("tick") if last else None,
        last_job=last.get("job_id") if last else None,
    )
