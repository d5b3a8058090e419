"""Process titles, so `ps` and `top` tell naqd's processes apart:
`naqd: supervisor`, `naqd: worker[default]#0`, `naqd: scheduler`."""

from __future__ import annotations


def set_title(label: str) -> None:
    """Show `naqd: <label>` as this process's command line; a no-op without setproctitle."""
    try:
        from setproctitle import setproctitle
    except ImportError:  # pragma: no cover - a dependency; only the title is lost
        return
    setproctitle(f"naqd: {label}")
