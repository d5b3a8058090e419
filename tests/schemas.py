"""The wire format's JSON Schemas (docs/schemas/), for tests that check what naqd writes."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from tests.conftest import REPO

SCHEMAS = REPO / "docs" / "schemas"


@cache
def validator(kind: str) -> jsonschema.Draft202012Validator:
    """`kind`: envelope, result or deadletter."""
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(kind: str, data: bytes | dict[str, Any]) -> list[str]:
    doc = json.loads(data) if isinstance(data, bytes) else data
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator(kind).iter_errors(doc)]


def assert_valid(kind: str, data: bytes | dict[str, Any]) -> None:
    found = errors(kind, data)
    assert not found, f"not a valid {kind}: {found}"
