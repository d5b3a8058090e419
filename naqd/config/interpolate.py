"""`${VAR}` environment interpolation, applied to already-parsed YAML string scalars so
an environment value can never inject YAML structure (a `:` or newline stays text).

Supported forms (POSIX-shell-like):

- `${VAR}`            value of VAR; an error if VAR is not set
- `${VAR:-default}`   default if VAR is unset *or empty*; `${VAR-default}`: only if unset
- `${VAR:?message}`   an error carrying `message` if VAR is unset or empty; `${VAR?msg}`:
                      only if unset
- `$$`                a literal `$`

A `$` followed by anything else is kept literally (so `pa$word` needs no escaping).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_TOKEN = re.compile(r"\$(?:(\$)|\{([^}]*)(\}?))")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?|-|\?)(?P<arg>.*))?", re.S)


class InterpolationError(ValueError):
    """A `${...}` that cannot be expanded; the message is meant for the operator."""


def has_references(text: str) -> bool:
    """Cheap pre-check so plain strings skip the regex machinery."""
    return "$" in text


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    """Expand `${...}` references in `text` using `env` (default: os.environ)."""
    if not has_references(text):
        return text
    environ: Mapping[str, str] = os.environ if env is None else env
    return _TOKEN.sub(lambda match: _expand(match, environ), text)


def _expand(match: re.Match[str], env: Mapping[str, str]) -> str:
    if match.group(1):
        return "$"
    body, closed = match.group(2), match.group(3)
    if not closed:
        raise InterpolationError(f'unterminated "${{{body}": add the closing "}}"')
    if "${" in body:
        raise InterpolationError("nested ${...} references are not supported")
    parsed = _BODY.fullmatch(body)
    if parsed is None:
        raise InterpolationError(
            f'invalid reference "${{{body}}}": expected ${{NAME}}, ${{NAME:-default}} '
            "or ${NAME:?message}"
        )
    name, op, arg = parsed.group("name", "op", "arg")
    value = env.get(name)
    missing = value is None or (value == "" and op is not None and op.startswith(":"))
    if not missing:
        assert value is not None
        return value
    if op in (":-", "-"):
        return arg
    if op in (":?", "?") and arg:
        raise InterpolationError(f'environment variable "{name}" is not set: {arg}')
    if value == "":
        raise InterpolationError(f'environment variable "{name}" is empty')
    raise InterpolationError(
        f'environment variable "{name}" is not set (use ${{{name}:-default}} to give a default)'
    )
