"""Config errors carry a file position and a dotted path, so the operator can jump
straight to the offending line instead of decoding a traceback."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file; line and column are 1-based (None: whole file)."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """All problems found in one config file, reported together (one per line)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `issues` intact when the error crosses a process boundary.
        return (type(self), (self.issues,))


class Shape:
    """Stands in for a list/mapping where a scalar was expected, so validators can
    reject it with the same code path and wording as any other wrong value."""

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return self.description


def describe(value: Any, limit: int = 60) -> str:
    """Render a YAML value for an error message in YAML words, not Python type names."""
    if isinstance(value, Shape):
        return value.description
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= limit else value[: limit - 3] + "..."
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "an unsupported value"
