"""Logging: every line names the process role, queue and pid (journald cannot tell
children apart on a shared stderr)."""

from __future__ import annotations

import sys

from loguru import logger

from naqd.models import LoggingConfig

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[role]}</cyan>{extra[queue_tag]} pid={process} | {message}"
)


def setup_logging(cfg: LoggingConfig, role: str, queue: str = "") -> None:
    logger.remove()
    logger.configure(
        extra={"role": role, "queue": queue, "queue_tag": f"[{queue}]" if queue else ""}
    )
    if cfg.format == "json":
        logger.add(sys.stderr, level=cfg.level, serialize=True, enqueue=False)
    else:
        logger.add(sys.stderr, level=cfg.level, format=TEXT_FORMAT, colorize=None)
