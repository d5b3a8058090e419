"""The console's ASGI app on Starlette: the route table (pages in naqd/dashboard/pages.py,
the JSON API in naqd/dashboard/api.py), static files, security headers, and JSON or HTML
for a 404 or 405."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from naqd.dashboard import api, pages
from naqd.dashboard.runtime import Console
from naqd.dashboard.web import HERE, environment, error_response


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
        Route("/", pages.overview_page),
        Route("/queues/{name}", pages.queue_page),
        Route("/jobs", pages.jobs_page),
        Route("/jobs/{job_id:path}", pages.job_page),
        Route("/dead-letters", pages.dead_letters_page),
        Route("/schedules", pages.schedules_page),
        Route("/workers", pages.workers_page),
        Route("/audit", pages.audit_page),
        Route("/login", pages.login_page, methods=["GET"]),
        Route("/login", pages.login_submit, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/api/v1/me", api.api_me),
        Route("/api/v1/overview", api.api_overview),
        Route("/api/v1/queues", api.api_queues),
        Route("/api/v1/queues/{name}", api.api_queue),
        Route("/api/v1/queues/{name}/pause", api.named("pause_queue"), methods=["POST"]),
        Route("/api/v1/queues/{name}/resume", api.named("resume_queue"), methods=["POST"]),
        Route("/api/v1/queues/{name}/purge", api.named("purge_queue"), methods=["POST"]),
        Route("/api/v1/jobs", api.api_jobs),
        Route("/api/v1/search", api.api_search),
        Route("/api/v1/jobs/{job_id:path}/cancel", api.api_cancel, methods=["POST"]),
        Route("/api/v1/jobs/{job_id:path}", api.api_job),
        Route("/api/v1/dead-letters", api.api_dead_letters),
        Route("/api/v1/dead-letters/requeue", api.api_requeue_bulk, methods=["POST"]),
        Route("/api/v1/dead-letters/delete", api.api_delete_bulk, methods=["POST"]),
        Route("/api/v1/dead-letters/{job_id:path}/requeue", api.api_requeue_one, methods=["POST"]),
        Route("/api/v1/dead-letters/{job_id:path}", api.api_dead_letter, methods=["GET"]),
        Route("/api/v1/dead-letters/{job_id:path}", api.api_delete_one, methods=["DELETE"]),
        Route("/api/v1/schedules", api.api_schedules),
        Route("/api/v1/schedules/{name}/pause", api.named("pause_schedule"), methods=["POST"]),
        Route("/api/v1/schedules/{name}/resume", api.named("resume_schedule"), methods=["POST"]),
        Route("/api/v1/schedules/{name}/trigger", api.named("trigger_schedule"), methods=["POST"]),
        Route("/api/v1/workers", api.api_workers),
        Route("/api/v1/audit", api.api_audit),
        Route("/api/v1/events", api.api_events),
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
