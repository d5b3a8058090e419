"""The middleware of a daemon process (naq.yaml's `middleware:`, after the tracing and
Sentry integrations when those are on), loaded once at boot:
a worker runs its job hooks, the scheduler its enqueue and schedule hooks. A hook that
raises is logged here and counted in `naqd_middleware_errors_total{hook}`."""

from __future__ import annotations

from loguru import logger

from naqd.config import Config
from naqd.exitcodes import EXIT_CONFIG
from naqd.integrations import daemon as integrations
from naqd.middleware import Hooks, hooks_of, set_error_reporter
from naqd.observe.metrics import middleware_errors


def load(config: Config) -> tuple[Hooks | None, int | None]:
    """The hooks of `config.middleware` (None: there is none), or EXIT_CONFIG when one
    cannot be loaded: a configuration error, reported once, never a restart loop."""
    set_error_reporter(report)
    try:
        # Tracing and Sentry when configured (naqd/integrations/daemon.py), outermost.
        builtin = integrations.setup(config)
    except integrations.IntegrationError as exc:
        logger.critical("{}: {}", config.path, exc)
        return None, EXIT_CONFIG
    try:
        return hooks_of([*builtin, *config.middleware]), None
    except BaseException as exc:
        logger.opt(exception=exc).critical(
            "cannot load middleware (middleware in {}): {}: {}",
            config.path,
            type(exc).__name__,
            exc,
        )
        return None, EXIT_CONFIG


def report(hook: str, middleware: object, exc: BaseException) -> None:
    logger.opt(exception=exc).error(
        "middleware {}.{} raised {}: {} (ignored: the job goes on)",
        type(middleware).__name__,
        hook,
        type(exc).__name__,
        exc,
    )
    middleware_errors().labels(hook).inc()
