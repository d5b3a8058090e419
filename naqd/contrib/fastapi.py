"""naqd in a FastAPI (or any Starlette) application (docs/integrations.md#fastapi): one
client per process, opened by the lifespan and closed at shutdown; a dependency that
hands it to endpoints; naqd being unreachable answered with 503, not a 500 and a
traceback.

    app = FastAPI(lifespan=naqd_lifespan("nats://nats:4222"))
    add_error_handler(app)

    @app.post("/reports")
    async def report(client: NaqdClient) -> dict[str, str]:
        job = await client.enqueue("app.tasks:build_report", 7)
        return {"job": job.id}
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.applications import Starlette

from naqd.client.client import Client
from naqd.client.errors import JobCancelled, JobFailed, NaqdError, PayloadTooLarge
from naqd.models import Config

log = logging.getLogger("naqd.contrib.fastapi")

STATE_KEY = "naqd"  # app.state.naqd: the application's client


@asynccontextmanager
async def open_client(
    app: Any,
    servers: str | list[str] | None = None,
    *,
    config: Config | None = None,
    **client_options: Any,
) -> AsyncIterator[Client]:
    """Open the application's client into `app.state.naqd` and close it on exit: for a
    lifespan of your own (`async with open_client(app, url): ... yield`). From naq.yaml's
    `nats:` section with `config=` (a loaded `naqd.config.Config`), else `servers`."""
    if config is not None:
        client = Client.from_config(config, **client_options)
    else:
        client = Client(servers or "nats://127.0.0.1:4222", **client_options)
    await client.connect()
    setattr(app.state, STATE_KEY, client)
    try:
        yield client
    finally:
        setattr(app.state, STATE_KEY, None)
        try:
            await client.close()
        except Exception as exc:  # a failed close must not fail the app's shutdown
            log.warning("closing the naqd client failed: %s", exc)


def naqd_lifespan(
    servers: str | list[str] | None = None,
    *,
    config: Config | None = None,
    **client_options: Any,
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """`FastAPI(lifespan=naqd_lifespan(url))`: the whole lifespan, when naqd is all the
    application opens at startup (else use `open_client` in your own)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with open_client(app, servers, config=config, **client_options):
            yield

    return lifespan


def get_client(request: Request) -> Client:
    """The dependency: the client the lifespan opened."""
    client = getattr(request.app.state, STATE_KEY, None)
    if not isinstance(client, Client):
        raise RuntimeError(
            "no naqd client on app.state: pass lifespan=naqd_lifespan(...) to FastAPI, or "
            "open one with naqd.contrib.fastapi.open_client in your lifespan"
        )
    return client


NaqdClient = Annotated[Client, Depends(get_client)]
"""An endpoint parameter `client: NaqdClient` receives the application's client."""


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After when naqd cannot take the job (NATS down, timeouts, streams
    missing). A job's own outcome (`JobFailed`, `JobCancelled`) and a job too large
    are not about availability: re-raised, so they answer 500 as any bug does, unless
    the endpoint handles them."""
    if isinstance(exc, JobFailed | JobCancelled | PayloadTooLarge):
        raise exc
    log.warning("%s %s: naqd unavailable: %s: %s", request.method, request.url.path,
                type(exc).__name__, exc)  # fmt: skip
    return JSONResponse(
        {"detail": f"the job queue is unavailable ({type(exc).__name__}); try again later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def add_error_handler(app: Starlette) -> None:
    """Answer a `NaqdError` that an endpoint lets through with 503 (see `unavailable`).
    Any Starlette application, FastAPI's included."""
    app.add_exception_handler(NaqdError, unavailable)
