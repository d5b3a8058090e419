"""`naqd worker` flags as configuration: the flags become YAML nodes in the same tree a
file would give (alone, or laid over a `--config` file), so the schema runs every check it
runs on a file. A flag's value is read as a YAML plain scalar, exactly like a `${VAR}`
in the file: `--concurrency 4` is the integer 4. Errors about a flag name the flag
(`naqd worker: --concurrency: expected a positive integer, got 0`), errors in the file
keep their `file:line:col`. The same tree prints as the equivalent naq.yaml.

Rules (docs/operations.md, "naqd worker"):
- the queues served are the ones named, else the file's, else `default`;
- several queues named form one pool (`cli`): each of its processes serves them all,
  and `--processes` is the pool's; one queue named runs in processes of its own (the
  file's pools are left out); no queue named keeps the file's queues and pools;
- `--concurrency` overrides the file for every queue served, `--processes` for every
  pool and every queue in no pool;
- `--import` modules are added to the file's `tasks.imports`;
- servers: `--servers`, else `$NAQD_SERVERS`, else the file's, else the embedded server;
- the scheduler runs only with `--scheduler`; without it the file's schedules are left
  out (nothing would fire them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from naqd.config.errors import ConfigError, ConfigIssue
from naqd.config.loader import build_config, parse_config, read_config_text
from naqd.config.walk import MERGE_TAG, NULL_TAG, STR_TAG, Ctx
from naqd.models import Config
from naqd.values import describe

SOURCE = "naqd worker"  # names the flags in errors, as a file name would
FLAGS_PATH = "<naqd worker>"  # Config.path when no file is given
SERVERS_ENV = "NAQD_SERVERS"

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
_RESOLVER = Resolver()


@dataclass(frozen=True)
class WorkerFlags:
    """The command line as typed: values stay text until the schema reads them."""

    queues: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    concurrency: str | None = None
    processes: str | None = None
    servers: str | None = None
    scheduler: bool = False


@dataclass(frozen=True)
class WorkerConfig:
    config: Config
    tree: MappingNode = field(repr=False)

    def to_yaml(self) -> str:
        """The equivalent naq.yaml (a file's `${VAR}` references stay unexpanded)."""
        return yaml.serialize(self.tree, Dumper=yaml.SafeDumper, width=100)


class FlagMark(Mark):
    """Position of a node that came from the command line: the flag that set it."""

    def __init__(self, flag: str) -> None:
        super().__init__(flag, 0, 0, 0, None, None)
        self.flag = flag


@dataclass
class FlagCtx(Ctx):
    """Blames the flag, not a position, when the node came from the command line."""

    source: str = SOURCE  # the command, in an error about one of its flags

    def error(self, node: Node, path: str, message: str) -> None:
        mark = node.start_mark
        if isinstance(mark, FlagMark):
            self.issues.append(ConfigIssue(self.source, None, None, mark.flag, message))
        else:
            super().error(node, path, message)


def worker_config(
    flags: WorkerFlags,
    env: Mapping[str, str],
    file_text: str | None = None,
    filename: str | None = None,
) -> WorkerConfig:
    """The configuration `naqd worker` runs; ConfigError lists every problem.

    A file is checked on its own first, so its errors read exactly as `naqd check`
    prints them; the flags are then laid over it and the result checked again.
    """
    path = filename or FLAGS_PATH
    root: MappingNode = _mapping([], FlagMark(SOURCE))
    if file_text is not None:
        parse_config(file_text, path, env)  # raises ConfigError with the file's positions
        node = yaml.compose(file_text, Loader=yaml.SafeLoader)
        if isinstance(node, MappingNode):
            root = node
    root = _apply(root, flags, env)
    config = build_config(root, FlagCtx(filename=path, env=env))
    return WorkerConfig(config, root)


def run_config(filename: str, env: Mapping[str, str]) -> Config:
    """The configuration `naqd run --config FILE` runs: the file, with `$NAQD_SERVERS`
    over its `nats.servers`, as `naqd worker` and every client command read it."""
    text = read_config_text(filename)
    config = parse_config(text, filename, env)  # the file's own errors, as `naqd check`
    servers, label = _servers(WorkerFlags(), env)
    if not servers:
        return config
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    root = node if isinstance(node, MappingNode) else _mapping([], FlagMark(label))
    root = _with_servers(root, servers, label)
    return build_config(root, FlagCtx(filename=filename, env=env, source="naqd run"))


def _with_servers(root: MappingNode, servers: list[str], label: str) -> MappingNode:
    mark = FlagMark(label)
    nats = _section(root, "nats")
    items = _sequence([_scalar(url, mark) for url in servers], mark)
    return _set(root, "nats", _set(nats, "servers", items, mark), mark)


def _apply(root: MappingNode, flags: WorkerFlags, env: Mapping[str, str]) -> MappingNode:
    servers, label = _servers(flags, env)
    if servers:
        root = _with_servers(root, servers, label)
    if flags.imports:
        mark = FlagMark("--import")
        tasks = _section(root, "tasks")
        known = _get(tasks, "imports")
        have = list(known.value) if isinstance(known, SequenceNode) else []
        seen = {n.value for n in have if isinstance(n, ScalarNode)}
        added = [_scalar(m, mark) for m in dict.fromkeys(flags.imports) if m not in seen]
        root = _set(
            root, "tasks", _set(tasks, "imports", _sequence(have + added, mark), mark), mark
        )
    names = _served(root, flags)
    pooled = _pooled(root, flags, names)
    root = _set(root, "queues", _queues(root, flags, names, pooled), FlagMark(SOURCE))
    root = _pools(root, flags, names)
    mark = FlagMark("--scheduler")
    enabled = _scalar("true" if flags.scheduler else "false", mark)
    root = _set(
        root, "scheduler", _set(_section(root, "scheduler"), "enabled", enabled, mark), mark
    )
    if not flags.scheduler:
        root = _drop(root, "schedules")
    return root


def _servers(flags: WorkerFlags, env: Mapping[str, str]) -> tuple[list[str], str]:
    """--servers, else $NAQD_SERVERS (the order every other command uses)."""
    for text, label in ((flags.servers, "--servers"), (env.get(SERVERS_ENV), f"${SERVERS_ENV}")):
        if text and text.strip():
            return [part.strip() for part in text.split(",") if part.strip()], label
    return [], ""


def _served(root: MappingNode, flags: WorkerFlags) -> tuple[str, ...]:
    known = _items(_get(root, "queues"))
    return tuple(dict.fromkeys(flags.queues)) or tuple(known) or ("default",)


def _pooled(root: MappingNode, flags: WorkerFlags, names: tuple[str, ...]) -> set[str]:
    """The served queues that will be in a pool: all of several named, none of one, else
    the file's pooled ones."""
    if flags.queues:
        return set(names) if len(names) > 1 else set()
    pooled: set[str] = set()
    for _, pool in _items(_get(root, "pools")).values():
        members = _get(pool, "queues")
        if isinstance(members, SequenceNode):
            pooled |= {n.value for n in members.value if isinstance(n, ScalarNode)}
    return pooled


CLI_POOL = "cli"  # the pool of the queues named on the command line


def _pools(root: MappingNode, flags: WorkerFlags, names: tuple[str, ...]) -> MappingNode:
    """Several queues named: one pool of them. One named: no pool. None: the file's
    pools, each with `--processes` when given."""
    if flags.queues and len(names) == 1:
        return _drop(root, "pools")
    if flags.queues:
        mark = FlagMark(f"QUEUE {describe(names[0])}")
        name = CLI_POOL
        while name in names:
            name = f"_{name}"
        entry = _mapping([], mark)
        members = _sequence([_scalar(n, mark) for n in names], mark)
        entry = _set(entry, "queues", members, mark)
        if flags.processes is not None:
            flag = FlagMark("--processes")
            entry = _set(entry, "processes", _scalar(flags.processes, flag), flag)
        pool = _mapping([(ScalarNode(STR_TAG, name, mark, mark), entry)], mark)
        return _set(root, "pools", pool, mark)
    file_pools = _get(root, "pools")
    if flags.processes is None or not isinstance(file_pools, MappingNode):
        return root
    flag = FlagMark("--processes")
    pairs: list[tuple[Node, Node]] = []
    for key, node in _items(file_pools).values():
        if isinstance(node, MappingNode):
            node = _set(node, "processes", _scalar(flags.processes, flag), flag)
        pairs.append((key, node))
    return _set(root, "pools", _mapping(pairs, file_pools.start_mark), flag)


def _queues(
    root: MappingNode, flags: WorkerFlags, names: tuple[str, ...], pooled: set[str]
) -> MappingNode:
    """Only the queues this worker serves, each with the flags' overrides."""
    known = _items(_get(root, "queues"))
    pairs: list[tuple[Node, Node]] = []
    for name in names:
        if name in known:
            key, entry = known[name]
            entry = entry if isinstance(entry, MappingNode) else _mapping([], entry.start_mark)
        else:
            mark = FlagMark(f"QUEUE {describe(name)}")
            key, entry = ScalarNode(STR_TAG, name, mark, mark), _mapping([], mark)
        if name in pooled and flags.queues:
            entry = _drop(entry, "processes")  # the pool's processes serve it
        overrides = [("concurrency", flags.concurrency)]
        if name not in pooled:
            overrides.append(("processes", flags.processes))
        for flag, value in overrides:
            if value is not None:
                mark = FlagMark(f"--{flag}")
                entry = _set(entry, flag, _scalar(value, mark), mark)
        pairs.append((key, entry))
    return _mapping(pairs, FlagMark(SOURCE))


# --- YAML node helpers: copies, never changes to the file's nodes --------------------


def _scalar(text: str, mark: Mark) -> ScalarNode:
    """A plain scalar, typed as YAML types it; `$` is escaped so a flag's text is never
    interpolated a second time (and prints as `$$`, which reads back as `$`)."""
    tag = _RESOLVER.resolve(ScalarNode, text, (True, False))
    value = text.replace("$", "$$") if tag == STR_TAG else text
    return ScalarNode(tag, value, mark, mark)


def _mapping(pairs: list[tuple[Node, Node]], mark: Mark) -> MappingNode:
    return MappingNode(MAP_TAG, pairs, mark, mark, flow_style=False)


def _sequence(items: list[Node], mark: Mark) -> SequenceNode:
    return SequenceNode(SEQ_TAG, items, mark, mark, flow_style=False)


def _items(node: Node | None) -> dict[str, tuple[Node, Node]]:
    """Key -> (key node, value node) with `<<` merges applied (the file is valid)."""
    if not isinstance(node, MappingNode):
        return {}
    return Ctx(filename="", env={}).items(node, "")


def _get(node: Node | None, key: str) -> Node | None:
    found = _items(node).get(key)
    return None if found is None else found[1]


def _section(root: MappingNode, key: str) -> MappingNode:
    """The file's section, or an empty one (an empty `nats:` too)."""
    node = _get(root, key)
    if isinstance(node, MappingNode):
        return node
    mark = node.start_mark if node is not None else FlagMark(SOURCE)
    return _mapping([], mark)


def _is_key(node: Node, key: str) -> bool:
    return isinstance(node, ScalarNode) and node.tag != MERGE_TAG and node.value == key


def _set(mapping: MappingNode, key: str, value: Node, mark: Mark) -> MappingNode:
    """A copy with `key` set explicitly, in place if it was there (an explicit key wins
    over one from a `<<` merge)."""
    pairs = list(mapping.value)
    for i, (k, _) in enumerate(pairs):
        if _is_key(k, key):
            pairs[i] = (k, value)
            break
    else:
        pairs.append((ScalarNode(STR_TAG, key, mark, mark), value))
    return MappingNode(
        mapping.tag, pairs, mapping.start_mark, mapping.end_mark, flow_style=mapping.flow_style
    )


def _drop(mapping: MappingNode, key: str) -> MappingNode:
    pairs = [(k, v) for k, v in mapping.value if not _is_key(k, key)]
    copy = MappingNode(
        mapping.tag, pairs, mapping.start_mark, mapping.end_mark, flow_style=mapping.flow_style
    )
    if _get(copy, key) is not None:  # still there through a `<<` merge: empty it
        mark = FlagMark(SOURCE)
        return _set(copy, key, ScalarNode(NULL_TAG, "", mark, mark), mark)
    return copy


__all__ = ["ConfigError", "WorkerConfig", "WorkerFlags", "worker_config"]
