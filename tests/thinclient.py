"""Run Python as a client-only install would: the modules of the `daemon` extra cannot be
imported (a meta-path finder refuses them), without uninstalling anything."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

# The top-level modules the `daemon` extra brings (pyproject.toml).
DAEMON_MODULES = ("yaml", "croniter", "uvloop", "prometheus_client", "loguru", "cloudpickle")

BLOCKER = textwrap.dedent(
    f"""
    import sys

    class _ClientOnly:
        blocked = {DAEMON_MODULES!r}

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _ClientOnly())
    """
)


def run_python(
    code: str, *, block: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (repo on sys.path), the daemon modules blocked."""
    source = (BLOCKER if block else "") + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The `naqd` command line with the daemon modules blocked."""
    return run_python(
        f"import sys\nsys.argv = ['naqd', *{list(args)!r}]\nfrom naqd.cli import main\nmain()\n",
        timeout=timeout,
    )
