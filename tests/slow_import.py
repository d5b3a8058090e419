"""A task module whose import takes a while (a reload's check must keep the watchdog fed
meanwhile). Its import writes `started` then, after $NAQD_TEST_SLOW_IMPORT_SECONDS,
`done` into the directory $NAQD_TEST_SLOW_IMPORT_DIR."""

import os
import time
from pathlib import Path

_dir = Path(os.environ["NAQD_TEST_SLOW_IMPORT_DIR"])
(_dir / "started").touch()
time.sleep(float(os.environ.get("NAQD_TEST_SLOW_IMPORT_SECONDS", "3")))
(_dir / "done").touch()
