"""Job dependencies: a job enqueued with `depends_on` waits as a holder message on
`naqd.deps.<queue>.<job_id>` in the jobs stream (no consumer covers it, so it survives
every restart). The scheduler leader releases it into its queue once every parent has a
`succeeded` record, or fails it with a reason naming the parent once one has `failed`
(which in turn fails its own dependents). Decisions are pure; I/O is in the resolver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError, NotFoundError

from naqd.config import Config
from naqd.protocol.envelope import (
    EnvelopeError,
    ErrorInfo,
    ResultRecord,
    decode_job,
    decode_result,
    encode_result,
)
from naqd.protocol.names import (
    DEPENDENT_SUBJECT_PREFIX,
    HDR_DEPENDS_ON,
    HDR_ENCODING,
    HDR_MSG_ID,
    HDR_TTL,
    JOBS_STREAM,
    RESULTS_BUCKET,
    done_subject,
    job_subject,
    result_subject,
    under,
)

SCAN_INTERVAL = 2.0  # safety net: a full pass even when no event woke us


@dataclass(frozen=True)
class Verdict:
    action: str  # "release" | "wait" | "fail"
    reason: str = ""


def judge(parents: list[str], records: dict[str, ResultRecord | None]) -> Verdict:
    """Release when all parents succeeded; fail on the first failed parent (in the order
    given); otherwise wait. A parent with no record yet has not finished."""
    for parent in parents:
        rec = records.get(parent)
        if rec is not None and rec.status in ("failed", "cancelled"):
            err = rec.error
            detail = f": {err.type}: {err.message}" if err else ""
            return Verdict("fail", f"dependency {parent} {rec.status}{detail}")
    if all((r := records.get(p)) is not None and r.status == "succeeded" for p in parents):
        return Verdict("release")
    return Verdict("wait")


def parse_parents(header: str | None) -> list[str]:
    return [p for p in (header or "").split(",") if p]


def queue_of(subject: str) -> str:
    """`naqd.deps.<queue>.<job_id>` -> queue (job ids may contain dots, queues may not)."""
    return subject[len(DEPENDENT_SUBJECT_PREFIX) + 1 :].split(".", 1)[0]


class DependencyResolver:
    def __init__(self, nc: NATS, config: Config, may_act: Callable[[], bool]) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.config = config
        self.may_act = may_act
        self.wake = asyncio.Event()
        self.stopped = False
        self._kv: Any = None
        self._holder_sub: Any = None
        self._results_sub: Any = None  # only while jobs wait: results are a busy subject

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("dependency resolver crashed")
            raise

    async def _run(self) -> None:
        # New holders and new result records wake the resolver; a periodic pass covers
        # anything missed while disconnected or not leading.
        self._holder_sub = await self.nc.subscribe(under(DEPENDENT_SUBJECT_PREFIX), cb=self._poke)
        while not self.stopped:
            if self.may_act():
                try:
                    await self.resolve_all()
                except Exception as exc:
                    logger.warning("dependency pass failed: {}: {}", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), SCAN_INTERVAL)
            self.wake.clear()
            await asyncio.sleep(0.02)  # coalesce bursts of events

    async def _results(self) -> Any:
        if self._kv is None:
            self._kv = await self.js.key_value(RESULTS_BUCKET)
        return self._kv

    async def _record(self, job_id: str) -> ResultRecord | None:
        try:
            entry = await (await self._results()).get(job_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            return decode_result(entry.value, allow_pickle=False)
        except ValueError:  # pickled result: only its status matters here
            import json

            d = json.loads(entry.value)
            return ResultRecord(id=job_id, status=d.get("status", "queued"))

    async def _poke(self, _msg: Any) -> None:
        self.wake.set()

    async def _watch_results(self, waiting: bool) -> None:
        if waiting and self._results_sub is None:
            self._results_sub = await self.nc.subscribe(result_subject(">"), cb=self._poke)
        elif not waiting and self._results_sub is not None:
            sub, self._results_sub = self._results_sub, None
            await sub.unsubscribe()

    async def resolve_all(self) -> None:
        info = await self.js.stream_info(
            JOBS_STREAM, subjects_filter=under(DEPENDENT_SUBJECT_PREFIX)
        )
        held = info.state.subjects or {}
        # Subscribe before resolving, so a parent finishing meanwhile still wakes us.
        await self._watch_results(bool(held))
        for subject in held:
            if self.stopped or not self.may_act():
                return
            await self.resolve(subject)

    async def resolve(self, subject: str) -> None:
        try:
            held = await self.js.get_msg(JOBS_STREAM, subject=subject)
        except NotFoundError:
            return
        headers = held.headers or {}
        parents = parse_parents(headers.get(HDR_DEPENDS_ON))
        records = {p: await self._record(p) for p in parents}
        verdict = judge(parents, records)
        if verdict.action == "wait":
            return
        job_id = subject.split(".", 3)[3]
        queue = queue_of(subject)
        if verdict.action == "release":
            # Every job header goes on (a signed job stays signed, a producer hook's
            # trace context reaches the worker) but the holder's own bookkeeping.
            out = {k: v for k, v in headers.items() if not _holders(k)}
            out[HDR_MSG_ID] = job_id
            await self.js.publish(job_subject(queue), held.data or b"", headers=out)
            logger.info("released job {} (dependencies succeeded)", job_id)
        else:
            await self._fail(job_id, queue, held.data or b"", headers, verdict.reason)
            logger.warning("job {} failed: {}", job_id, verdict.reason)
        assert held.seq is not None
        with contextlib.suppress(NotFoundError):
            await self.js.delete_msg(JOBS_STREAM, held.seq)

    async def _fail(
        self, job_id: str, queue: str, data: bytes, headers: dict[str, str], reason: str
    ) -> None:
        task, enqueued_at, ttl = "", 0.0, None
        try:
            env = decode_job(data, headers.get(HDR_ENCODING, "json"))
            task, enqueued_at, ttl = env.task, env.enqueued_at, env.result_ttl
        except EnvelopeError:
            pass
        rec = ResultRecord(
            id=job_id,
            status="failed",
            error=ErrorInfo("DependencyFailed", reason, ""),
            task=task,
            queue=queue,
            enqueued_at=enqueued_at,
            finished_at=time.time(),
            worker="scheduler",
        )
        record = encode_result(rec)
        # Like a worker's outcome: the job's own result_ttl, then the naqd.done notice.
        ttl_headers = {HDR_TTL: f"{max(1, int(ttl))}s"} if ttl else None
        await self.js.publish(result_subject(job_id), record, headers=ttl_headers)
        await self.nc.publish(done_subject(job_id), record)


def _holders(header: str) -> bool:
    """Headers of the holder, not of the job: the server's and the parents list."""
    return header.startswith("Nats-") or header == HDR_DEPENDS_ON
