"""Run mypy --strict on the typed-task cases: tasks_ok.py must pass, and tasks_errors.py
must fail exactly on the lines marked `# E: <code>`, with that code. Exit 1 otherwise.

    python tests/typing/check_typing.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = re.compile(r"#\s*E:\s*([\w-]+)")
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[\w-]+)\]$")


def mypy(path: Path) -> str:
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


def main() -> int:
    problems: list[str] = []
    ok = mypy(HERE / "tasks_ok.py")
    if ok.strip():
        problems.append(f"tasks_ok.py must type-check:\n{ok}")
    bad = HERE / "tasks_errors.py"
    expected = {
        n: m.group(1)
        for n, line in enumerate(bad.read_text().splitlines(), 1)
        if (m := MARK.search(line))
    }
    got: dict[int, set[str]] = {}
    for line in mypy(bad).splitlines():
        if m := ERROR.match(line):
            got.setdefault(int(m["line"]), set()).add(m["code"])
    for n, code in sorted(expected.items()):
        if code not in got.get(n, set()):
            problems.append(f"tasks_errors.py:{n}: expected a [{code}] error, got {got.get(n)}")
    for n in sorted(set(got) - set(expected)):
        problems.append(f"tasks_errors.py:{n}: unexpected error(s) {sorted(got[n])}")
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"typing: tasks_ok.py passes, tasks_errors.py rejects all {len(expected)} cases")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
