"""The console's request plumbing, shared by its pages and its API: who is asking (bearer
token, trusted proxy header, session cookie; the decisions are naqd/dashboard/auth.py's),
the session cookie and its CSRF token, `guarded` (401, the login redirect, 403, CSRF),
the client's errors as HTTP statuses (404, 409, 400, 503), query parameters, and
rendering templates with autoescaping (everything from a job is text, never markup)."""

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
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)

from naqd.dashboard import auth
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
