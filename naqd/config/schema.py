"""The naq.yaml schema: one table of `key -> validator` per section. Adding a key is one
line here plus a field (with its default) in naqd/models.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from naqd.config.checks import (
    address_or_network,
    auto_or_boolean,
    boolean,
    choice,
    duration,
    exception_name,
    fraction,
    header_name,
    host_port,
    http_url,
    integer,
    is_loopback,
    module_name,
    object_ref,
    otlp_url,
    password_hash,
    payload_size,
    priority_level,
    rate,
    role,
    secret,
    secret_key,
    server_url,
    size,
    subject_prefix,
    sync_setting,
    task_pattern,
    task_ref,
    text,
)
from naqd.config.security import check_nats_auth, check_tasks_security, check_tls
from naqd.config.walk import INVALID, Ctx, Items, NamedMap, Section, is_null, join, scalar
from naqd.models import (
    AuditConfig,
    BackoffConfig,
    Config,
    DashboardConfig,
    DashboardProxyConfig,
    DashboardToken,
    DashboardUser,
    DeadLettersConfig,
    EmbeddedNatsConfig,
    HeartbeatConfig,
    LeaderElectionConfig,
    LoggingConfig,
    MetricsConfig,
    NatsConfig,
    PoolConfig,
    QueueConfig,
    ResultsConfig,
    ScheduleConfig,
    SchedulerConfig,
    SentryConfig,
    ShutdownConfig,
    TasksConfig,
    TlsConfig,
    TracingConfig,
)
from naqd.protocol.schedules import check_cron, check_timezone
from naqd.values import describe, format_duration

# --- structural validators: (node, ctx, path) -> value | INVALID --------------------


def string_list(item: Callable[[Any], str], comma_separated: bool = False) -> Callable[..., Any]:
    """A list checked item by item (each issue at its own position); optionally also a
    single comma-separated string, handy for `${NATS_URLS}`."""

    def validate(node: Node, ctx: Ctx, path: str) -> Any:
        if is_null(node):
            return ()
        if isinstance(node, SequenceNode):
            values = [scalar(item)(n, ctx, f"{path}[{i}]") for i, n in enumerate(node.value)]
            return INVALID if any(v is INVALID for v in values) else tuple(values)
        value = ctx.value(node, path)
        if value is INVALID:
            return INVALID
        if comma_separated and isinstance(value, str):
            try:
                return tuple(item(part.strip()) for part in value.split(",") if part.strip())
            except ValueError as exc:
                ctx.error(node, path, str(exc))
                return INVALID
        ctx.error(node, path, f"expected a list of strings, got {describe(value)}")
        return INVALID

    return validate


def plain_list(node: Node, ctx: Ctx, path: str) -> Any:
    if is_null(node):
        return ()
    if not isinstance(node, SequenceNode):
        value = ctx.value(node, path)
        if value is not INVALID:
            ctx.error(node, path, f"expected a list, got {describe(value)}")
        return INVALID
    value = ctx.plain(node, path)
    return INVALID if value is INVALID else tuple(value)


def plain_mapping(node: Node, ctx: Ctx, path: str) -> Any:
    if is_null(node):
        return {}
    if isinstance(node, ScalarNode | SequenceNode):
        value = ctx.value(node, path)
        if value is not INVALID:
            ctx.error(node, path, f"expected a mapping, got {describe(value)}")
        return INVALID
    return ctx.plain(node, path)


def queue_ref(node: Node, ctx: Ctx, path: str) -> Any:
    name = scalar(text)(node, ctx, path)
    known = ctx.queue_names
    if name is not INVALID and known is not None and name not in known:
        options = ", ".join(sorted(known)) or "(none)"
        ctx.error(node, path, f"unknown queue {describe(name)} (configured queues: {options})")
        return INVALID
    return name


BACKOFF = Section(
    BackoffConfig,
    {
        "strategy": scalar(choice("exponential", "linear", "fixed")),
        "base": scalar(duration(at_least=0.0)),
        "max": scalar(duration(at_least=0.0)),
        "jitter": scalar(fraction),
    },
)


def backoff(node: Node, ctx: Ctx, path: str) -> Any:
    """A strategy mapping, or an explicit list of delays (`[5s, 1m, 10m]`)."""
    if isinstance(node, SequenceNode):
        if not node.value:
            ctx.error(node, path, "expected at least one delay")
            return INVALID
        delays = [
            scalar(duration(at_least=0.0))(n, ctx, f"{path}[{i}]") for i, n in enumerate(node.value)
        ]
        return INVALID if any(d is INVALID for d in delays) else BackoffConfig(delays=tuple(delays))
    return BACKOFF(node, ctx, path)


def priority_levels(node: Node, ctx: Ctx, path: str) -> Any:
    """`[high, default, low]`: level names highest first, one of them `default` (the
    plain `naqd.jobs.<queue>` subject, so producers without priorities keep working)."""
    levels = string_list(priority_level)(node, ctx, path)
    if levels is INVALID or not levels:
        return levels
    seen: set[str] = set()
    for level in levels:
        if level in seen:
            ctx.error(node, path, f"priority level {describe(level)} is listed twice")
            return INVALID
        seen.add(level)
    if "default" not in seen:
        ctx.error(
            node,
            path,
            'the levels must include "default" (jobs enqueued without a priority), '
            f"e.g. [{levels[0]}, default]",
        )
        return INVALID
    return levels


# --- cross-field checks -------------------------------------------------------------


def check_schedule(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    if "cron" in items and "every" in items:
        later = max(items["cron"][0], items["every"][0], key=lambda n: n.start_mark.index)
        ctx.error(later, join(path, later.value), "set either cron or every, not both")
    elif "cron" not in items and "every" not in items:
        ctx.error(where, path, 'missing a trigger: set cron (like "0 3 * * *") or every (like 30s)')
    known = ctx.queue_names
    if "queue" not in items and known is not None and "default" not in known:
        options = ", ".join(sorted(known))
        ctx.error(where, path, f'no "default" queue is configured; set queue to one of: {options}')


def check_queue(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    if values.get("prefetch") and len(values.get("priorities", ())) > 1:
        ctx.error(
            items["prefetch"][1],
            join(path, "prefetch"),
            "a queue with priorities cannot prefetch: a held job would run before a "
            "higher level's newer one (set prefetch: 0, or drop priorities)",
        )
    retries = values.get("retries", QueueConfig.retries)
    deliveries = values.get("max_deliveries")
    if deliveries is not None and deliveries < retries + 1:
        ctx.error(
            items["max_deliveries"][1],
            join(path, "max_deliveries"),
            f"must be at least retries + 1 ({retries + 1}): every attempt is a delivery",
        )


def check_lease(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    if any(key in items and key not in values for key in ("lease", "renew_every")):
        return  # already reported
    defaults = LeaderElectionConfig()
    lease = values.get("lease", defaults.lease)
    renew = values.get("renew_every", defaults.renew_every)
    if renew >= lease:
        blame = "renew_every" if "renew_every" in items else "lease"
        node = items[blame][1] if blame in items else where
        ctx.error(
            node,
            join(path, blame),
            f"renew_every ({format_duration(renew)}) must be shorter than "
            f"lease ({format_duration(lease)})",
        )
    elif renew * 2 > lease:
        blame = "renew_every" if "renew_every" in items else "lease"
        node = items[blame][1] if blame in items else where
        ctx.error(
            node,
            join(path, blame),
            f"renew_every ({format_duration(renew)}) must be at most half of "
            f"lease ({format_duration(lease)}), so a renewal lands before the leader "
            "steps down at 3/4 of the lease",
        )


def check_dashboard(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    if "secret_key" in items and "secret_key_file" in items:
        ctx.error(
            items["secret_key_file"][0],
            join(path, "secret_key_file"),
            "set either secret_key or secret_key_file, not both",
        )
    listen = values.get("listen", DashboardConfig.listen)
    open_console = not (values.get("users") or values.get("tokens") or values.get("proxy"))
    if open_console and "listen" in items and not is_loopback(listen):
        ctx.error(
            items["listen"][1],
            join(path, "listen"),
            "a dashboard without users, tokens or proxy listens on loopback only: add "
            "dashboard.users (naqd dashboard hash-password) or dashboard.tokens, "
            "or listen on 127.0.0.1",
        )
    seen: dict[str, str] = {}
    for name, tok in (values.get("tokens") or {}).items():
        if tok.token in seen:
            node = items["tokens"][1]
            ctx.error(node, join(path, "tokens"), f"tokens {seen[tok.token]} and {name} are equal")
        seen[tok.token] = name


DASHBOARD = Section(
    DashboardConfig,
    {
        "enabled": scalar(boolean),
        "listen": scalar(host_port),
        "users": NamedMap(
            Section(
                DashboardUser,
                {"password_hash": scalar(password_hash), "role": scalar(role)},
            ),
            "user",
        ),
        "tokens": NamedMap(
            Section(
                DashboardToken,
                {"token": scalar(secret_key), "role": scalar(role)},
                required=("token",),
            ),
            "token",
        ),
        "proxy": Section(
            DashboardProxyConfig,
            {
                "header": scalar(header_name),
                "trusted": string_list(address_or_network),
                "role": scalar(role),
            },
            required=("trusted",),
        ),
        "secret_key": scalar(secret_key),
        "secret_key_file": scalar(text),
        "session_ttl": scalar(duration(at_least=60.0)),
        "login_attempts": scalar(integer(1, None, "a positive integer")),
        "live_clients": scalar(integer(1, None, "a positive integer")),
    },
    check=check_dashboard,
)

# --- the schema ---------------------------------------------------------------------

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

QUEUE = Section(
    QueueConfig,
    {
        "concurrency": scalar(integer(1, None, "a positive integer")),
        "processes": scalar(integer(1, None, "a positive integer")),
        "timeout": scalar(duration()),
        "retries": scalar(integer(0, None, "an integer of 0 or more")),
        "ack_wait": scalar(duration(at_least=1.0)),
        "backoff": backoff,
        "retry_on": string_list(exception_name, comma_separated=True),
        "dont_retry_on": string_list(exception_name, comma_separated=True),
        "max_deliveries": scalar(integer(1, None, "a positive integer")),
        "max_jobs_per_process": scalar(integer(0, None, "an integer of 0 or more")),
        "max_jobs_jitter": scalar(integer(0, None, "an integer of 0 or more")),
        "max_memory_per_process": scalar(size),
        "max_in_flight": scalar(integer(1, None, "a positive integer")),
        "rate": scalar(rate),
        "priorities": priority_levels,
        "prefetch": scalar(integer(0, None, "an integer of 0 or more")),
    },
    check=check_queue,
)

SCHEDULE = Section(
    ScheduleConfig,
    {
        "task": scalar(task_ref),
        "cron": scalar(check_cron),
        "every": scalar(duration(at_least=1.0)),
        "timezone": scalar(check_timezone),
        "queue": queue_ref,
        "args": plain_list,
        "kwargs": plain_mapping,
        "enabled": scalar(boolean),
        "missed": scalar(choice("skip", "run_once")),
        "jitter": scalar(duration(at_least=0.0)),
        "retries": scalar(integer(0, None, "an integer of 0 or more")),
        "timeout": scalar(duration()),
    },
    required=("task",),
    check=check_schedule,
)

QUEUES = NamedMap(
    QUEUE, "queue", empty=lambda: {"default": QueueConfig(name="default")}, require_one=True
)


def queues(node: Node, ctx: Ctx, path: str) -> Any:
    """Queues, remembering their names so schedules and pools can refer to them."""
    entries = QUEUES.entries(node, ctx, path)
    ctx.queue_names = None if entries is INVALID else set(entries)
    if isinstance(node, MappingNode):
        ctx.queue_items = ctx.items(node, path)
    if entries is INVALID or any(v is INVALID for v in entries.values()):
        return INVALID
    return entries


# What belongs to a worker process, not to a queue: set on the pool for a pooled queue.
PROCESS_KEYS = ("processes", "max_jobs_per_process", "max_jobs_jitter", "max_memory_per_process")


def pool_queues(node: Node, ctx: Ctx, path: str) -> Any:
    """`[default, reports]`: configured queues, each once, at least one."""
    names = string_list(text)(node, ctx, path)
    if names is INVALID:
        return INVALID
    if not names:
        ctx.error(node, path, "a pool needs at least one queue")
        return INVALID
    nodes = node.value if isinstance(node, SequenceNode) else [node] * len(names)
    ok = True
    seen: set[str] = set()
    known = ctx.queue_names
    for i, (name, item) in enumerate(zip(names, nodes, strict=True)):
        if name in seen:
            ctx.error(item, f"{path}[{i}]", f"queue {describe(name)} is listed twice")
            ok = False
        elif known is not None and name not in known:
            options = ", ".join(sorted(known)) or "(none)"
            ctx.error(
                item,
                f"{path}[{i}]",
                f"unknown queue {describe(name)} (configured queues: {options})",
            )
            ok = False
        seen.add(name)
    return names if ok else INVALID


POOL = Section(
    PoolConfig,
    {
        "queues": pool_queues,
        "processes": scalar(integer(1, None, "a positive integer")),
        "max_jobs_per_process": scalar(integer(0, None, "an integer of 0 or more")),
        "max_jobs_jitter": scalar(integer(0, None, "an integer of 0 or more")),
        "max_memory_per_process": scalar(size),
    },
    required=("queues",),
)

POOLS = NamedMap(POOL, "pool")


def pools(node: Node, ctx: Ctx, path: str) -> Any:
    """Pools, and the rules between pools and queues: a queue is in one pool at most, a
    pool is not named like a queue (both name worker processes), and a pooled queue
    leaves what belongs to a process (how many, when to recycle) to its pool."""
    entries = POOLS.entries(node, ctx, path)
    if entries is INVALID or not isinstance(node, MappingNode):
        return entries
    pool_items = ctx.items(node, path)
    owner: dict[str, str] = {}
    ok = all(pool is not INVALID for pool in entries.values())
    for name, pool in entries.items():
        key_node, _ = pool_items[name]
        if name in (ctx.queue_names or ()):
            ctx.error(
                key_node,
                join(path, name),
                f"a pool cannot have the name of a queue ({describe(name)}): "
                "both name worker processes",
            )
            ok = False
        for queue in pool.queues if pool is not INVALID else ():
            if queue in owner:
                ctx.error(
                    key_node,
                    join(path, name),
                    f"queue {describe(queue)} is already in pool {describe(owner[queue])}: "
                    "a queue is served by one pool at most",
                )
                ok = False
                continue
            owner[queue] = name
            entry = ctx.queue_items.get(queue)
            if entry is None or not isinstance(entry[1], MappingNode):
                continue
            queue_keys = ctx.items(entry[1], join("queues", queue))
            for key in PROCESS_KEYS:
                if key in queue_keys:
                    ctx.error(
                        queue_keys[key][0],
                        join(join("queues", queue), key),
                        f"queue {describe(queue)} is served by pool {describe(name)}: "
                        f"set {key} on the pool (pools.{name}.{key}), or take the "
                        "queue out of the pool to give it processes of its own",
                    )
                    ok = False
    return entries if ok else INVALID


ROOT = Section(
    Config,
    {
        "nats": Section(
            NatsConfig,
            {
                "servers": string_list(server_url, comma_separated=True),
                "embedded": Section(
                    EmbeddedNatsConfig,
                    {
                        "listen": scalar(host_port),
                        "store_dir": scalar(text),
                        "sync": scalar(sync_setting),
                    },
                ),
                "replicas": scalar(integer(1, 5, "an integer from 1 to 5")),
                "user": scalar(text),
                "password": scalar(secret),
                "password_file": scalar(text),
                "token": scalar(secret),
                "token_file": scalar(text),
                "nkey_seed_file": scalar(text),
                "creds_file": scalar(text),
                "tls": Section(
                    TlsConfig,
                    {
                        "ca_file": scalar(text),
                        "cert_file": scalar(text),
                        "key_file": scalar(text),
                    },
                    check=check_tls,
                ),
                "tls_required": scalar(boolean),
                "inbox_prefix": scalar(subject_prefix),
                "monitoring": string_list(http_url, comma_separated=True),
            },
            check=check_nats_auth,
        ),
        "tasks": Section(
            TasksConfig,
            {
                "imports": string_list(module_name),
                "serializer": scalar(choice("json", "pickle")),
                "allow": string_list(task_pattern),
                "signing_key": scalar(secret_key),
                "signing_key_file": scalar(text),
                "accepted_keys": string_list(secret_key),
                "sign_json": scalar(boolean),
                "max_payload": scalar(payload_size),
            },
            check=check_tasks_security,
        ),
        "queues": queues,  # before schedules and pools, which refer to queue names
        "pools": pools,
        "schedules": NamedMap(SCHEDULE, "schedule"),
        "scheduler": Section(
            SchedulerConfig,
            {
                "enabled": scalar(boolean),
                "leader_election": Section(
                    LeaderElectionConfig,
                    {"lease": scalar(duration()), "renew_every": scalar(duration())},
                    check=check_lease,
                ),
            },
        ),
        "heartbeat": Section(HeartbeatConfig, {"interval": scalar(duration())}),
        "results": Section(
            ResultsConfig, {"ttl": scalar(duration()), "keep_args": scalar(boolean)}
        ),
        "dead_letters": Section(DeadLettersConfig, {"max_age": scalar(duration())}),
        "audit": Section(
            AuditConfig,
            {
                "max_age": scalar(duration()),
                "max_entries": scalar(integer(1, None, "a positive integer")),
            },
        ),
        "metrics": Section(
            MetricsConfig,
            {
                "listen": scalar(host_port),
                "enabled": scalar(boolean),
                "health_grace": scalar(duration(at_least=0.0)),
            },
        ),
        "shutdown": Section(ShutdownConfig, {"grace_period": scalar(duration(at_least=0.0))}),
        "logging": Section(
            LoggingConfig,
            {
                "level": scalar(choice(*LOG_LEVELS, upper=True)),
                "format": scalar(choice("text", "json")),
            },
        ),
        "dashboard": DASHBOARD,
        "tracing": Section(
            TracingConfig,
            {
                "enabled": scalar(auto_or_boolean),
                "endpoint": scalar(otlp_url),
            },
        ),
        "sentry": Section(
            SentryConfig,
            {
                "dsn": scalar(text),
                "environment": scalar(text),
                "report": scalar(choice("dead_letter", "every_failure")),
                "monitors": scalar(boolean),
            },
        ),
        "middleware": string_list(object_ref),
    },
)
