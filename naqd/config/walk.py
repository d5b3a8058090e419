"""Walks a composed YAML node tree against a declarative schema, collecting issues with
positions instead of stopping at the first one.

Validators have the signature `(node, ctx, path) -> value | INVALID`; a validator that
returns INVALID has already recorded why. `Section` and `NamedMap` are validators too,
so schemas nest by plain composition.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from naqd.config.errors import ConfigIssue
from naqd.config.interpolate import InterpolationError, has_references, interpolate
from naqd.values import Shape, describe

STR_TAG: Final = "tag:yaml.org,2002:str"
NULL_TAG: Final = "tag:yaml.org,2002:null"
MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final[Any] = _Invalid()
"""Returned by validators for a value that failed (the issue is already recorded)."""

Items = dict[str, tuple[Node, Node]]
Validator = Callable[[Node, "Ctx", str], Any]
Check = Callable[[dict[str, Any], Items, Node, "Ctx", str], None]


def join(path: str, key: str) -> str:
    """Dotted path of `key` inside `path` (the root path is empty)."""
    return f"{path}.{key}" if path else key


def is_null(node: Node) -> bool:
    """An empty value (`key:` or `~`), which sections treat as "all defaults"."""
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def shape(node: Node) -> Shape | None:
    """How a collection node reads in an error message (None for scalars)."""
    if isinstance(node, MappingNode):
        return Shape("a mapping")
    if isinstance(node, SequenceNode):
        return Shape("a list")
    return None


@dataclass
class Ctx:
    """Per-parse state: where issues go, the environment, and cross-section facts."""

    filename: str
    env: Mapping[str, str]
    issues: list[ConfigIssue] = field(default_factory=list)
    queue_names: set[str] | None = field(default_factory=lambda: {"default"})
    queue_items: Items = field(default_factory=dict)  # the queues' nodes, for pool rules
    _constructor: SafeConstructor = field(default_factory=SafeConstructor)
    _resolver: Resolver = field(default_factory=Resolver)

    def error(self, node: Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.issues.append(
            ConfigIssue(self.filename, mark.line + 1, mark.column + 1, path, message)
        )

    def value(self, node: Node, path: str) -> Any:
        """The plain Python value of a scalar, after `${...}` interpolation.

        An interpolated *plain* (unquoted) scalar is re-resolved, so `${WORKERS:-4}`
        is the integer 4 just as a literal `4` would be; quoted ones stay strings.
        Collections come back as a Shape so validators reject them uniformly.
        """
        found = shape(node)
        if found is not None:
            return found
        assert isinstance(node, ScalarNode)
        tag, text = node.tag, node.value
        if tag == STR_TAG and has_references(text):
            try:
                text = interpolate(text, self.env)
            except InterpolationError as exc:
                self.error(node, path, str(exc))
                return INVALID
            if node.style is None:
                tag = self._resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        try:
            scalar = ScalarNode(tag, text, node.start_mark, node.end_mark, node.style)
            return self._constructor.construct_object(scalar, deep=True)
        except ConstructorError:
            self.error(node, path, f"unsupported YAML tag {tag}")
            return INVALID

    def items(self, node: MappingNode, path: str, _seen: frozenset[int] = frozenset()) -> Items:
        """Key -> (key node, value node), rejecting duplicate and non-string keys and
        applying `<<: *anchor` merges (explicit keys win, then earlier merge sources)."""
        if id(node) in _seen:
            self.error(node, path, "a merge (<<) refers to itself")
            return {}
        seen = _seen | {id(node)}
        explicit: Items = {}
        merged: Items = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        self.error(source, path, "<< expects a mapping or a list of mappings")
                        continue
                    for key, pair in self.items(source, path, seen).items():
                        merged.setdefault(key, pair)
                continue
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, path, f"expected a plain string key, got {shape(key_node)}")
                continue
            key = key_node.value
            if key in explicit:
                first = explicit[key][0].start_mark.line + 1
                self.error(
                    key_node, join(path, key), f"duplicate key (first defined on line {first})"
                )
                continue
            explicit[key] = (key_node, value_node)
        return {**merged, **explicit}

    def plain(self, node: Node, path: str, _seen: frozenset[int] = frozenset()) -> Any:
        """Arbitrary YAML data (task args/kwargs) as lists, dicts and scalars."""
        if id(node) in _seen:
            self.error(node, path, "recursive alias")
            return INVALID
        seen = _seen | {id(node)}
        if isinstance(node, SequenceNode):
            values = [self.plain(item, f"{path}[{i}]", seen) for i, item in enumerate(node.value)]
            return INVALID if any(v is INVALID for v in values) else values
        if isinstance(node, MappingNode):
            pairs = {
                k: self.plain(v, join(path, k), seen)
                for k, (_, v) in self.items(node, path).items()
            }
            return INVALID if any(v is INVALID for v in pairs.values()) else pairs
        value = self.value(node, path)
        if isinstance(value, datetime.date | bytes):
            # YAML 1.1 turns `2024-01-01` into a date, which no task serializer expects.
            self.error(
                node,
                path,
                "expected plain data (text, numbers, true/false, lists, mappings), "
                f"got {describe(value)}; quote it to pass it as text",
            )
            return INVALID
        return value


def scalar(check: Callable[[Any], Any]) -> Validator:
    """Lift `check(value) -> value`, which raises ValueError(message), to a validator."""

    def validate(node: Node, ctx: Ctx, path: str) -> Any:
        value = ctx.value(node, path)
        if value is INVALID:
            return INVALID
        try:
            return check(value)
        except ValueError as exc:
            ctx.error(node, path, str(exc))
            return INVALID

    return validate


def _unknown_key(ctx: Ctx, key_node: Node, path: str, key: str, known: list[str]) -> None:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"?' if close else "valid keys: " + ", ".join(known)
    ctx.error(key_node, join(path, key), f"unknown key ({hint})")


@dataclass(frozen=True)
class Section:
    """A mapping with a fixed set of keys, built into dataclass `cls`.

    Absent keys are left to the dataclass defaults, so defaults live in one place
    (naqd/models.py). `check` runs after the fields, for cross-field rules.
    """

    cls: type
    fields: Mapping[str, Validator]
    required: tuple[str, ...] = ()
    check: Check | None = None

    def __call__(self, node: Node, ctx: Ctx, path: str) -> Any:
        return self.build(node, ctx, path)

    def build(
        self,
        node: Node,
        ctx: Ctx,
        path: str,
        where: Node | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Validate `node`; `where` is the node to blame for mapping-level problems and
        `extra` holds constructor arguments that do not come from the YAML (a name)."""
        where = where or node
        if is_null(node):
            items: Items = {}
        elif isinstance(node, MappingNode):
            items = ctx.items(node, path)
        else:
            found = shape(node) or ctx.value(node, path)
            if found is not INVALID:
                ctx.error(node, path, f"expected a mapping, got {describe(found)}")
            return INVALID
        known = list(self.fields)
        for key, (key_node, _) in items.items():
            if key not in self.fields:
                _unknown_key(ctx, key_node, path, key, known)
        values: dict[str, Any] = {}
        ok = True
        for key, validate in self.fields.items():  # schema order: queues before schedules
            if key in items:
                value = validate(items[key][1], ctx, join(path, key))
                if value is INVALID:
                    ok = False
                else:
                    values[key] = value
        for key in self.required:
            if key not in items:
                ctx.error(where, path, f'missing required key "{key}"')
                ok = False
        if self.check is not None:
            self.check(values, items, where, ctx, path)
        return self.cls(**(extra or {}), **values) if ok else INVALID


@dataclass(frozen=True)
class NamedMap:
    """A mapping of user-chosen names (queues, schedules) to `section` entries."""

    section: Section
    noun: str
    empty: Callable[[], dict[str, Any]] = dict
    require_one: bool = False

    NAME = re.compile(r"[A-Za-z0-9_-]+")

    def __call__(self, node: Node, ctx: Ctx, path: str) -> Any:
        entries = self.entries(node, ctx, path)
        if entries is INVALID or any(v is INVALID for v in entries.values()):
            return INVALID
        return entries

    def entries(self, node: Node, ctx: Ctx, path: str) -> Any:
        """Name -> built entry, or INVALID per failed entry (so names stay known)."""
        if is_null(node):
            return self.empty()
        if not isinstance(node, MappingNode):
            found = shape(node) or ctx.value(node, path)
            if found is not INVALID:
                ctx.error(
                    node, path, f"expected a mapping of {self.noun} names, got {describe(found)}"
                )
            return INVALID
        items = ctx.items(node, path)
        if not items and self.require_one:
            ctx.error(node, path, f"at least one {self.noun} is required")
            return INVALID
        result: dict[str, Any] = {}
        for name, (key_node, value_node) in items.items():
            entry_path = join(path, name)
            if not self.NAME.fullmatch(name):
                ctx.error(
                    key_node,
                    entry_path,
                    f'invalid {self.noun} name: use only letters, digits, "_" and "-" '
                    "(names become NATS subject tokens)",
                )
            result[name] = self.section.build(
                value_node, ctx, entry_path, where=key_node, extra={"name": name}
            )
        return result
