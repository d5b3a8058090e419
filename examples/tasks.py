"""Example tasks used by config/naq.yaml and the README quick-start."""

from __future__ import annotations

import asyncio
import time


def add(a: float, b: float) -> float:
    return a + b


async def async_add(a: float, b: float) -> float:
    await asyncio.sleep(0)
    return a + b


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str = "boom") -> None:
    raise RuntimeError(message)


def nightly_report() -> str:
    return "report done"


def ping() -> str:
    return "pong"
