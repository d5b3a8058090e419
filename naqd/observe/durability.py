"""Whether a power cut can lose what naqd acknowledged, as far as naqd can tell.

nats-server acknowledges a publish before it fsyncs it unless `jetstream.sync_interval`
is `always` (docs/guarantees.md#power-cut). naqd sets that on the embedded server; an
external server's setting is visible only on its monitoring port (`/varz`), so naqd
reads it where `nats.monitoring` names one, for `naqd check` and the startup log."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from naqd.models import NatsConfig
from naqd.values import format_duration

DOC = "docs/guarantees.md#power-cut"


def judge_varz(url: str, varz: dict[str, Any]) -> str:
    """A warning for a server that acknowledges before fsync, or "" (pure)."""
    js = varz.get("jetstream")
    config = js.get("config") if isinstance(js, dict) else None
    if not isinstance(config, dict):
        return f"{url}: no JetStream configuration in /varz"
    if config.get("sync_always"):
        return ""
    interval = config.get("sync_interval")
    every = (
        format_duration(interval / 1e9)
        if isinstance(interval, (int, float)) and interval > 0
        else "its default interval (2m)"
    )
    name = varz.get("server_name") or url
    return (
        f"server {name} fsyncs every {every}, not before it acknowledges: a power cut "
        f"or kernel crash of its host can lose acknowledged jobs and results; set "
        f"jetstream {{ sync_interval: always }} ({DOC})"
    )


def embedded_warning(sync: str | float) -> str:
    if sync == "always":
        return ""
    window = format_duration(float(sync))
    return (
        f"nats.embedded.sync is {window}: a power cut or kernel crash loses the jobs and "
        f"results acknowledged in the last {window} ({DOC})"
    )


def fetch_varz(url: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/varz", timeout=timeout) as resp:
        data = json.loads(resp.read())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def durability_warnings(
    nats: NatsConfig, fetch: Callable[[str], dict[str, Any]] = fetch_varz
) -> list[str]:
    """What could lose acknowledged jobs on a power cut, one line each: only what naqd
    can see (the embedded server's setting, the /varz of `nats.monitoring`)."""
    if not nats.servers:
        warning = embedded_warning(nats.embedded.sync)
        return [warning] if warning else []
    if not nats.monitoring:
        return []  # nothing naqd can see: docs/operations.md says what to set
    answers = fetch_all(nats.monitoring, fetch)
    out = []
    for url in nats.monitoring:
        varz = answers.get(url)
        if not isinstance(varz, dict):
            why = varz or "no answer within 3s"
            out.append(f"{url}: cannot read /varz to check the fsync setting: {why}")
            continue
        warning = judge_varz(url, varz)
        if warning:
            out.append(warning)
    return out


def fetch_all(
    urls: tuple[str, ...], fetch: Callable[[str], dict[str, Any]], deadline: float = 3.0
) -> dict[str, dict[str, Any] | str]:
    """Each URL's /varz (or why not), fetched at once from daemon threads: a name that
    does not resolve must not hold up `naqd check` or the exit for long."""
    answers: dict[str, dict[str, Any] | str] = {}

    def one(url: str) -> None:
        try:
            answers[url] = fetch(url)
        except (OSError, ValueError) as exc:
            answers[url] = str(exc)

    threads = [threading.Thread(target=one, args=(u,), daemon=True) for u in urls]
    for t in threads:
        t.start()
    end = time.monotonic() + deadline
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return dict(answers)


def warn_if_not_durable(nats: NatsConfig) -> threading.Thread:
    """Log the warnings at startup from a thread: a slow monitoring port must not hold
    up the daemon's start."""
    from loguru import logger

    def check() -> None:
        for warning in durability_warnings(nats):
            logger.warning("{}", warning)

    thread = threading.Thread(target=check, name="naqd-durability-check", daemon=True)
    thread.start()
    return thread
