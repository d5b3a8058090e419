"""The JSON API under /api/v1/ (docs/dashboard.md#the-json-api): reads through the
client's explorer, actions through its audited actions, the live event stream and the
argument search as server-sent events."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    Response,
    StreamingResponse,
)

from naqd.dashboard import backend, live
from naqd.dashboard.auth import Principal
from naqd.dashboard.web import (
    Handler,
    HTTPError,
    arg,
    console_of,
    dlq_filters,
    guarded,
    job_filters,
    json_body,
    limit_of,
    time_of,
    to_json,
    via,
)

# -- the JSON API: reads ---------------------------------------------------------------


@guarded("read")
async def api_me(request: Request) -> Response:
    who: Principal = request.state.who
    return to_json({"name": who.name, "role": who.role, "via": who.via})


@guarded("read")
async def api_overview(request: Request) -> Response:
    ov = await backend.explorer(console_of(request).ready()).overview()
    return to_json(ov.to_dict())


@guarded("read")
async def api_queues(request: Request) -> Response:
    rows = await backend.explorer(console_of(request).ready()).queues()
    return to_json({"items": [r.to_dict() for r in rows]})


@guarded("read")
async def api_queue(request: Request) -> Response:
    name = request.path_params["name"]
    rows = await backend.explorer(console_of(request).ready()).queues()
    row = next((r for r in rows if r.name == name), None)
    if row is None:
        raise HTTPError(404, f"queue {name!r} not found")
    return to_json(row.to_dict())


@guarded("read")
async def api_jobs(request: Request) -> Response:
    """With only `q`, a job id or id prefix is looked up in every state (one page, no
    cursor); with other filters it narrows that listing."""
    ex = backend.explorer(console_of(request).ready())
    f = job_filters(request)
    if f["q"] and not any(f[k] for k in ("queue", "state", "task", "since", "until", "cursor")):
        found = await ex.find_jobs(f["q"], limit=f["limit"])
        return to_json({"items": [j.to_dict() for j in found], "cursor": None,
                        "scanned": len(found), "partial": False, "total": None})  # fmt: skip
    return to_json((await ex.list_jobs(**f)).to_dict())


@guarded("read")
async def api_job(request: Request) -> Response:
    ex = backend.explorer(console_of(request).ready())
    job = await ex.job_detail(request.path_params["job_id"])
    return to_json(job.to_dict())


@guarded("read")
async def api_search(request: Request) -> Response:
    """Jobs whose arguments match `args` (`user_id=42`): server-sent events (a `hit` per
    job as the scan finds it, `progress` between) that stop when the page hangs up; with
    `format=json`, one answer once the scan ends (at most `limit` hits)."""
    query = arg(request, "args")
    if not query:
        raise HTTPError(400, "args: give a value to look for, like user_id=42")
    ex = backend.explorer(console_of(request).ready())
    search = ex.search_args(query, queue=arg(request, "queue"), limit=limit_of(request))
    if request.query_params.get("format") == "json":
        hits: list[dict[str, Any]] = []
        last: dict[str, Any] = {}
        async for event in search:
            last = event.to_dict()
            if event.job is not None:
                hits.append(event.job.to_dict())
        return to_json({"items": hits, "scanned": last.get("scanned", 0), "done": True})

    async def events() -> Any:
        try:
            async for event in search:
                data = event.to_dict()
                kind = "hit" if event.job is not None else "progress"
                yield live.frame({"type": kind, **data})
                if event.done:
                    yield live.frame({"type": "done", **data})
                    return
        finally:
            search.stop()  # the page hung up (Stop, or left): the scan ends too

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@guarded("read")
async def api_dead_letters(request: Request) -> Response:
    ex = backend.explorer(console_of(request).ready())
    got = await ex.dead_letters(
        **dlq_filters(request), cursor=arg(request, "cursor"), limit=limit_of(request)
    )
    return to_json(got.to_dict())


@guarded("read")
async def api_dead_letter(request: Request) -> Response:
    ex = backend.explorer(console_of(request).ready())
    return to_json((await ex.dead_letter(request.path_params["job_id"])).to_dict())


@guarded("read")
async def api_schedules(request: Request) -> Response:
    rows = await backend.explorer(console_of(request).ready()).schedules()
    return to_json({"items": [r.to_dict() for r in rows]})


@guarded("read")
async def api_workers(request: Request) -> Response:
    rows = await backend.explorer(console_of(request).ready()).workers()
    return to_json({"items": [r.to_dict() for r in rows]})


@guarded("read")
async def api_audit(request: Request) -> Response:
    log = backend.audit(console_of(request).ready())
    got = await log.list(
        action=arg(request, "action"),
        actor=arg(request, "actor"),
        target=arg(request, "target"),
        since=time_of(request, "since"),
        cursor=arg(request, "cursor"),
        limit=limit_of(request),
    )
    return to_json(got.to_dict())


SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@guarded("read")
async def api_events(request: Request) -> Response:
    """The live stream every page listens to (docs/dashboard.md#live-updates)."""
    console = console_of(request)
    try:
        listener = console.broker.open()
    except live.Full as exc:
        raise HTTPError(503, str(exc)) from None
    hello = {"type": "hello", "nats": console.up, "at": time.time()}
    return StreamingResponse(
        live.stream(console.broker, listener, hello),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


# -- the JSON API: actions -------------------------------------------------------------


def acting(request: Request) -> Any:
    return backend.actions(console_of(request).ready(), request.state.who, via(request))


@guarded("act")
async def api_requeue_one(request: Request) -> Response:
    done = await acting(request).requeue_dead_letter(request.path_params["job_id"])
    return to_json(done.to_dict())


@guarded("act")
async def api_delete_one(request: Request) -> Response:
    done = await acting(request).delete_dead_letter(request.path_params["job_id"])
    return to_json(done.to_dict())


async def _bulk(request: Request, requeue: bool) -> Response:
    body = await json_body(request)
    unknown = set(body) - {"queue", "task", "error_type", "reason", "all", "dry_run"}
    if unknown:
        raise HTTPError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    flt = backend.dead_letter_filter(
        body.get("queue"),
        body.get("task"),
        body.get("error_type"),
        body.get("reason"),
        bool(body.get("all")),
    )
    act = acting(request)
    dry = bool(body.get("dry_run"))
    if requeue:
        done = await act.requeue_dead_letters(flt, dry_run=dry)
    else:
        done = await act.delete_dead_letters(flt, dry_run=dry)
    return to_json(done.to_dict())


@guarded("act")
async def api_requeue_bulk(request: Request) -> Response:
    return await _bulk(request, requeue=True)


@guarded("act")
async def api_delete_bulk(request: Request) -> Response:
    return await _bulk(request, requeue=False)


@guarded("act")
async def api_cancel(request: Request) -> Response:
    done = await acting(request).cancel_job(request.path_params["job_id"])
    return to_json(done.to_dict())


def named(action: str) -> Handler:
    @guarded("act")
    async def act(request: Request) -> Response:
        method = getattr(acting(request), action)
        done = await method(request.path_params["name"])
        return to_json(done.to_dict())

    return act
