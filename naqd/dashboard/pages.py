"""The console's HTML pages and its login: each reads through the client's explorer and
renders a template (naqd/dashboard/templates/); a page's `?fragment=1` renders only its
live part, which the page script swaps in when an event says it changed."""

from __future__ import annotations

import time

from loguru import logger
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    RedirectResponse,
    Response,
)

from naqd.dashboard import auth, backend
from naqd.dashboard.web import (
    HTTPError,
    arg,
    console_of,
    dlq_filters,
    error_response,
    finish_session,
    form_of,
    guarded,
    job_filters,
    limit_of,
    page,
    principal,
    render,
    session_of,
    start_session,
)

# -- pages -----------------------------------------------------------------------------


@guarded("page")
async def overview_page(request: Request) -> Response:
    ov = await backend.explorer(console_of(request).ready()).overview()
    return page(request, "overview.html", ov=ov)


@guarded("page")
async def queue_page(request: Request) -> Response:
    name = request.path_params["name"]
    ex = backend.explorer(console_of(request).ready())
    ov = await ex.overview()
    row = next((q for q in ov.queues if q.name == name), None)
    if row is None:
        raise HTTPError(404, f"queue {name!r} not found")
    state = arg(request, "state") or "queued"
    jobs = await ex.list_jobs(queue=name, state=state, cursor=arg(request, "cursor"), limit=50)
    from naqd.client.explore import JOB_STATES

    return page(request, "queue.html", q=row, jobs=jobs, state=state, states=JOB_STATES)


@guarded("page")
async def jobs_page(request: Request) -> Response:
    from naqd.client.explore import JOB_STATES

    ex = backend.explorer(console_of(request).ready())
    f = job_filters(request)
    found = None
    if f["q"] and not any(f[k] for k in ("queue", "state", "task", "since", "until", "cursor")):
        found = await ex.find_jobs(f["q"], limit=f["limit"])
    jobs = None if found is not None else await ex.list_jobs(**f)
    ov = await ex.overview()
    return page(
        request,
        "jobs.html",
        jobs=jobs,
        found=found,
        f=f,
        states=JOB_STATES,
        queues=[q.name for q in ov.queues],
        args_query=arg(request, "args") or "",
    )


@guarded("page")
async def job_page(request: Request) -> Response:
    job = await backend.explorer(console_of(request).ready()).job_detail(
        request.path_params["job_id"]
    )
    return page(request, "job.html", job=job)


@guarded("page")
async def dead_letters_page(request: Request) -> Response:
    ex = backend.explorer(console_of(request).ready())
    f = dlq_filters(request)
    dl = await ex.dead_letters(**f, cursor=arg(request, "cursor"), limit=limit_of(request))
    ov = await ex.overview()
    return page(request, "dead_letters.html", dl=dl, f=f, queues=[q.name for q in ov.queues])


@guarded("page")
async def schedules_page(request: Request) -> Response:
    rows = await backend.explorer(console_of(request).ready()).schedules()
    return page(request, "schedules.html", schedules=rows)


@guarded("page")
async def workers_page(request: Request) -> Response:
    hosts = await backend.explorer(console_of(request).ready()).hosts()
    return page(request, "workers.html", hosts=hosts)


@guarded("page")
async def audit_page(request: Request) -> Response:
    log = backend.audit(console_of(request).ready())
    entries = await log.list(
        action=arg(request, "action"),
        actor=arg(request, "actor"),
        target=arg(request, "target"),
        cursor=arg(request, "cursor"),
        limit=limit_of(request),
    )
    return page(request, "audit.html", entries=entries, f=dict(request.query_params))


# -- login -----------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Only a path of this site: never `//evil.example` or a full URL."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    who = principal(request)
    nxt = safe_next(request.query_params.get("next"))
    if who is not None and who.via != "anonymous":
        return RedirectResponse(nxt, 303)
    start_session(request)
    response = HTMLResponse(render(request, "login.html", None, next=nxt, error=None, user=""))
    finish_session(request, response)
    return response


async def login_submit(request: Request) -> Response:
    """Rate limit first (429 without checking anything), then CSRF, then the password."""
    console = console_of(request)
    now = time.time()
    client_ip = request.client.host if request.client else "?"
    wait = console.limiter.retry_after(client_ip, now)
    if wait > 0:
        return HTMLResponse(
            render(request, "login.html", None, next="/", user="",
                   error=f"too many failed logins: try again in {wait:.0f} s"),
            429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )  # fmt: skip
    try:
        form = await form_of(request)
    except HTTPError as exc:
        return error_response(request, exc.status, exc.message)
    nxt = safe_next(form.get("next"))
    if not auth.csrf_ok(session_of(request), form.get("csrf")):
        return error_response(request, 403, "missing or wrong CSRF token: reload the login page")
    user = form.get("user", "")
    who = auth.login(console.dash, user, form.get("password", ""))
    if who is None:
        console.limiter.failed(client_ip, now)
        logger.warning("dashboard: failed login for {!r} from {}", user, client_ip)
        body = render(
            request, "login.html", None, next=nxt, user=user, error="wrong user or password"
        )
        return HTMLResponse(body, 401)
    console.limiter.succeeded(client_ip)
    logger.info("dashboard: {} logged in from {}", who.name, client_ip)
    start_session(request, user=who.name)  # a fresh CSRF token too
    response = RedirectResponse(nxt, 303)
    finish_session(request, response)
    return response


async def logout(request: Request) -> Response:
    form = await form_of(request)
    if not auth.csrf_ok(session_of(request), form.get("csrf")):
        return error_response(request, 403, "missing or wrong CSRF token")
    response = RedirectResponse("/login", 303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response
