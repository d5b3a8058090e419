"""The shop's web front, a FastAPI application (docs/integrations.md#fastapi): one naqd
client per process from the lifespan, handed to endpoints by a dependency, 503 when the
job queue cannot be reached."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from naqd.contrib.fastapi import NaqdClient, add_error_handler, naqd_lifespan


class Order(BaseModel):
    prices: list[float]
    shipping: float = 0.0


def create_app(nats_url: str, **client_options: Any) -> FastAPI:
    app = FastAPI(lifespan=naqd_lifespan(nats_url, **client_options))
    add_error_handler(app)

    @app.post("/orders/total", status_code=202)
    async def total(order: Order, client: NaqdClient) -> dict[str, str]:
        job = await client.enqueue(
            "examples.testing.shop:order_total", order.prices, order.shipping
        )
        return {"job": job.id}

    @app.get("/jobs/{job_id}")
    async def job(job_id: str, client: NaqdClient) -> dict[str, Any]:
        status = await client.status(job_id)
        body: dict[str, Any] = {"status": str(status)}
        if status == "succeeded":
            body["result"] = await client.result(job_id, timeout=1)
        return body

    return app
