"""Before a reload is applied: boot what a child boots first (the task modules, the signing
key file) in a throw-away spawned process, so a deploy typo is refused while every child
still serves on the old config. The supervisor itself never imports task code."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from loguru import logger

from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG
from naqd.models import LoggingConfig, TasksConfig
from naqd.supervisor.embedded import SUPERVISOR_ONLY_ENV

TIMEOUT = 60.0  # seconds an import may take before the reload is refused


def check_boot(tasks: TasksConfig, logging: LoggingConfig) -> None:
    """Spawn target: exit 0 when a child could boot with these settings, 78 if not (the
    reason is logged, in the daemon's log format)."""
    from naqd.logs import setup_logging
    from naqd.proctitle import set_title
    from naqd.protocol.signing import keyring_from_config

    set_title("reload-check")
    setup_logging(logging, role="reload-check")
    try:
        keyring_from_config(tasks)
    except ValueError as exc:
        logger.error("{}", exc)
        sys.exit(EXIT_CONFIG)
    for module in tasks.imports:
        try:
            importlib.import_module(module)
        except BaseException as exc:
            logger.error(
                "cannot import task module {!r} (tasks.imports): {}: {}",
                module,
                type(exc).__name__,
                exc,
            )
            sys.exit(EXIT_CONFIG)
    sys.exit(0)


def preflight(
    ctx: Any, config: Config, timeout: float = TIMEOUT, alive: Callable[[], None] | None = None
) -> str:
    """Why children could not boot with `config`, or "" when they can. `alive` is called
    about once a second while the check runs: the supervisor's loop waits here, and
    systemd's watchdog (WatchdogSec=30 in systemd/naqd.service) must not take a slow
    import for a hung daemon."""
    proc: multiprocessing.process.BaseProcess = ctx.Process(
        target=check_boot, args=(config.tasks, config.logging), name="naqd-reload-check"
    )
    saved = {k: os.environ.pop(k) for k in SUPERVISOR_ONLY_ENV if k in os.environ}
    try:
        proc.start()
    finally:
        os.environ.update(saved)
    deadline = time.monotonic() + timeout
    while proc.is_alive() and time.monotonic() < deadline:
        proc.join(min(1.0, max(0.0, deadline - time.monotonic())))
        if alive is not None:
            alive()
    if proc.is_alive():
        proc.kill()
        proc.join()
        return f"importing the task modules took more than {timeout:.0f}s"
    if proc.exitcode != 0:
        return f"a child could not boot with it (exit code {proc.exitcode}; see above)"
    return ""
