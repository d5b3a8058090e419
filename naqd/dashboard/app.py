"""The console's HTTP surface on Starlette: HTML pages (Jinja2, autoescaped: everything a
job carries is text, never markup), the JSON API under /api/v1/ that the pages' script
and operators' scripts share, server-sent events, login and logout.

Who may do what is decided in naqd/dashboard/auth.py; what is read or done, in the
client (naqd/dashboard/backend.py). This module only translates: request in, principal
checked, client called, its errors turned into status codes (404, 409, 400, 503)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from loguru import logger
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from naqd.dashboard import auth, backend, live
from naqd.dashboard.auth import ANONYMOUS, Principal
from naqd.dashboard.runtime import Console, Unavailable

HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]
MAX_FORM = 16 * 1024
LIST_LIMIT = 50
MAX_LIMIT = 500


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- who is asking ---------------------------------------------------------------------


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def session_of(request: Request) -> auth.Session | None:
    """The request's session: its cookie's, or the one `start_session` made for it."""
    made = getattr(request.state, "session", None)
    if made is not None:
        return made  # type: ignore[no-any-return]
    console = console_of(request)
    return auth.read_session(
        console.key, request.cookies.get(auth.COOKIE), time.time(), console.dash.session_ttl
    )


def start_session(request: Request, user: str = "") -> None:
    """Give a request without a session (or, at login, a new user) a fresh one, whose
    cookie `finish_session` sets: every page then has a CSRF token, the login page too."""
    if not user and session_of(request) is not None:
        return
    console = console_of(request)
    value = auth.sign_session(console.key, user, time.time())
    request.state.cookie = value
    request.state.session = auth.read_session(
        console.key, value, time.time(), console.dash.session_ttl
    )


def finish_session(request: Request, response: Response) -> None:
    value = getattr(request.state, "cookie", None)
    if value is None:
        return
    response.set_cookie(
        auth.COOKIE,
        value,
        max_age=int(console_of(request).dash.session_ttl),
        httponly=True,
        samesite="lax",  # a link from a chat opens the page; actions need the CSRF token
        secure=request.url.scheme == "https",
        path="/",
    )


def principal(request: Request) -> Principal | None:
    """Bearer token, else the trusted proxy header, else the session cookie; anonymous
    (read-only) when no one is configured at all. A bearer header that names no token
    is refused outright rather than tried as something else."""
    dash = console_of(request).dash
    header = request.headers.get("authorization")
    if header:
        return auth.token_principal(dash, header)
    client_ip = request.client.host if request.client else None
    found = auth.proxy_principal(dash, client_ip, request.headers)
    if found is None:
        found = auth.session_principal(dash, session_of(request))
    if found is None and not dash.authenticated:
        return ANONYMOUS
    return found


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def error_response(request: Request, status: int, message: str) -> Response:
    if wants_html(request):
        who = principal(request)
        body = render(request, "error.html", who, status=status, message=message)
        return HTMLResponse(body, status)
    return JSONResponse({"error": message, "status": status}, status)


def translate(exc: Exception) -> HTTPError:
    """The client's errors as HTTP: not found 404, a lost race 409, bad input 400, NATS
    away 503. Anything else is a 500, logged with its traceback."""
    from nats import errors as nats_errors

    from naqd.client.errors import Conflict, JobNotFound, NaqdError
    from naqd.client.queues import QueueNotFound
    from naqd.client.schedules import ScheduleNotFound

    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, JobNotFound | QueueNotFound | ScheduleNotFound):
        return HTTPError(404, str(exc))
    if isinstance(exc, Conflict):
        return HTTPError(409, str(exc))
    if isinstance(exc, Unavailable):
        return HTTPError(503, str(exc))
    if isinstance(exc, nats_errors.Error | TimeoutError | ConnectionError):
        logger.debug("dashboard: NATS did not answer: {!r}", exc)
        return HTTPError(503, f"NATS did not answer: {exc or type(exc).__name__}")
    if isinstance(exc, ValueError):
        return HTTPError(400, str(exc))
    if isinstance(exc, NaqdError):
        return HTTPError(503, str(exc))
    logger.opt(exception=exc).error("dashboard request failed")
    return HTTPError(500, f"internal error: {type(exc).__name__}")


def guarded(kind: str) -> Callable[[Handler], Handler]:
    """`page`: a login redirect for strangers. `read`: 401 for strangers. `act`: also 403
    for viewers, and a CSRF token unless the caller sent a bearer token."""

    def wrap(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            who = principal(request)
            if who is None:
                if kind == "page":
                    target = urllib.parse.quote(str(request.url.path), safe="/")
                    return RedirectResponse(f"/login?next={target}", 303)
                if request.headers.get("authorization"):
                    return error_response(request, 401, "unknown bearer token")
                return error_response(request, 401, "log in or send a bearer token")
            if kind == "act":
                if not who.may_act:
                    return error_response(
                        request, 403, f"{who.name} is a viewer: actions need the operator role"
                    )
                if who.via != "token" and not auth.csrf_ok(
                    session_of(request), request.headers.get(auth.CSRF_HEADER)
                ):
                    return error_response(request, 403, "missing or wrong CSRF token")
            request.state.who = who
            if kind == "page":
                start_session(request)
            try:
                response = await handler(request)
            except Exception as exc:
                err = translate(exc)
                if kind == "page" and err.status == 503:
                    body = render(request, "outage.html", who, message=err.message)
                    response = HTMLResponse(body, 503)
                else:
                    response = error_response(request, err.status, err.message)
            finish_session(request, response)
            return response

        return run

    return wrap


def csrf_token(request: Request) -> str:
    session = session_of(request)
    return session.csrf if session else ""


# -- rendering -------------------------------------------------------------------------


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is text; markup comes only from the templates
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = format_time
    env.filters["ago"] = format_age
    env.filters["pretty"] = pretty
    env.filters["q"] = lambda v: urllib.parse.quote(str(v), safe="")
    return env


def format_time(value: Any) -> Markup:
    """A unix time (or ISO string) as <time>: UTC in the page and on hover; the script
    shows it in the viewer's own zone."""
    if value in (None, "", 0):
        return Markup("-")
    try:
        if isinstance(value, str):
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        else:
            stamp = float(value)
    except (TypeError, ValueError):
        return Markup("{}").format(value)
    utc = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time data-ts="{}" title="{}">{}</time>').format(round(stamp * 1000), utc, utc)


def format_age(seconds: Any) -> str:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return "-"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def render(request: Request, template: str, who: Principal | None, **values: Any) -> str:
    console = console_of(request)
    tmpl = request.app.state.jinja.get_template(template)
    context = {
        "who": who,
        "csrf": csrf_token(request),
        "path": request.url.path,
        "nats_up": console.up,
        "read_only": not console.dash.authenticated,
        "now": time.time(),
        "raw": dict(request.query_params),
        "query_string": urllib.parse.urlencode(
            [
                (k, v)
                for k, v in request.query_params.multi_items()
                if k not in ("cursor", "fragment") and v
            ]
        ),
        **values,
    }
    if request.query_params.get("fragment") and "live" in tmpl.blocks:
        return "".join(tmpl.blocks["live"](tmpl.new_context(context)))
    return str(tmpl.render(context))


def page(request: Request, template: str, **values: Any) -> HTMLResponse:
    return HTMLResponse(render(request, template, request.state.who, **values))


# -- parameters ------------------------------------------------------------------------


def arg(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def limit_of(request: Request) -> int:
    raw = arg(request, "limit")
    if raw is None:
        return LIST_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise HTTPError(400, f"limit must be a number from 1 to {MAX_LIMIT}")
    return int(raw)


def time_of(request: Request, name: str) -> float | None:
    """A unix time, or an ISO 8601 time (a naive one is UTC)."""
    raw = arg(request, name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPError(400, f"{name}: expected a unix time or an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_FORM:
        raise HTTPError(413, "request body too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise HTTPError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return body


async def form_of(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_FORM:
        raise HTTPError(413, "request body too large")
    parsed = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def dlq_filters(request: Request) -> dict[str, str | None]:
    return {k: arg(request, k) for k in ("queue", "task", "error_type", "reason")}


def job_filters(request: Request) -> dict[str, Any]:
    return {
        "queue": arg(request, "queue"),
        "state": arg(request, "state"),
        "task": arg(request, "task"),
        "since": time_of(request, "since"),
        "until": time_of(request, "until"),
        "q": arg(request, "q"),
        "cursor": arg(request, "cursor"),
        "limit": limit_of(request),
    }


def via(request: Request) -> str:
    who: Principal = request.state.who
    return "api" if who.via == "token" else "console"


def to_json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(data, default=str)), status)


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
    got = await backend.explorer(console_of(request).ready()).list_jobs(**job_filters(request))
    return to_json(got.to_dict())


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


def _named(action: str) -> Handler:
    @guarded("act")
    async def act(request: Request) -> Response:
        method = getattr(acting(request), action)
        done = await method(request.path_params["name"])
        return to_json(done.to_dict())

    return act


async def not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, f"no such page: {request.url.path}")


async def not_allowed(request: Request, exc: Exception) -> Response:
    return error_response(request, 405, f"{request.method} is not allowed here")


SECURITY_HEADERS = [
    # No inline script or style anywhere: a job's text could never run even if it
    # slipped past the escaping.
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; "
     b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response (pure ASGI: streams pass straight through)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


def create_app(console: Console) -> Starlette:
    routes = [
        Route("/", overview_page),
        Route("/queues/{name}", queue_page),
        Route("/jobs", jobs_page),
        Route("/jobs/{job_id:path}", job_page),
        Route("/dead-letters", dead_letters_page),
        Route("/schedules", schedules_page),
        Route("/workers", workers_page),
        Route("/audit", audit_page),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/v1/me", api_me),
        Route("/api/v1/overview", api_overview),
        Route("/api/v1/queues", api_queues),
        Route("/api/v1/queues/{name}", api_queue),
        Route("/api/v1/queues/{name}/pause", _named("pause_queue"), methods=["POST"]),
        Route("/api/v1/queues/{name}/resume", _named("resume_queue"), methods=["POST"]),
        Route("/api/v1/queues/{name}/purge", _named("purge_queue"), methods=["POST"]),
        Route("/api/v1/jobs", api_jobs),
        Route("/api/v1/search", api_search),
        Route("/api/v1/jobs/{job_id:path}/cancel", api_cancel, methods=["POST"]),
        Route("/api/v1/jobs/{job_id:path}", api_job),
        Route("/api/v1/dead-letters", api_dead_letters),
        Route("/api/v1/dead-letters/requeue", api_requeue_bulk, methods=["POST"]),
        Route("/api/v1/dead-letters/delete", api_delete_bulk, methods=["POST"]),
        Route("/api/v1/dead-letters/{job_id:path}/requeue", api_requeue_one, methods=["POST"]),
        Route("/api/v1/dead-letters/{job_id:path}", api_dead_letter, methods=["GET"]),
        Route("/api/v1/dead-letters/{job_id:path}", api_delete_one, methods=["DELETE"]),
        Route("/api/v1/schedules", api_schedules),
        Route("/api/v1/schedules/{name}/pause", _named("pause_schedule"), methods=["POST"]),
        Route("/api/v1/schedules/{name}/resume", _named("resume_schedule"), methods=["POST"]),
        Route("/api/v1/schedules/{name}/trigger", _named("trigger_schedule"), methods=["POST"]),
        Route("/api/v1/workers", api_workers),
        Route("/api/v1/audit", api_audit),
        Route("/api/v1/events", api_events),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: not_found, 405: not_allowed},
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.console = console
    app.state.jinja = environment()
    return app
