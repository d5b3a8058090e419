"""A task module no test config lists: importing it leaves a marker file, so a test can
prove a worker never imported it (the allow-list is checked before any import)."""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("NAQD_TEST_IMPORT_MARKER")
if _marker:
    Path(_marker).touch()


def boom(path: str) -> None:
    Path(path).touch()
