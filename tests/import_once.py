"""A task module that imports once and then fails (the file changed on disk between a
reload's check and a child's boot): the marker file is $NAQD_TEST_IMPORT_ONCE."""

import os
from pathlib import Path

_marker = Path(os.environ["NAQD_TEST_IMPORT_ONCE"])
if _marker.exists():
    raise ImportError("tests.import_once was imported once already")
_marker.touch()
