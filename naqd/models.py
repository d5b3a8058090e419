"""The validated configuration: plain frozen dataclasses, picklable so the supervisor
can hand them to spawned children. All durations are seconds (float).

A neutral home with no imports of its own: `naqd/config/` builds these from YAML, and
the client, the transport and the protocol use them (NATS settings, task keys, a
schedule) without loading the YAML loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class EmbeddedNatsConfig:
    listen: str = "127.0.0.1:4222"
    store_dir: str = "./var/nats"
    # "always": the server fsyncs before it acknowledges, so an acknowledged job
    # survives a power cut; a number of seconds: it fsyncs on that timer, and a power
    # cut loses what was acknowledged since (docs/guarantees.md#power-cut).
    sync: str | float = "always"


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...] = ()
    embedded: EmbeddedNatsConfig = field(default_factory=EmbeddedNatsConfig)
    replicas: int = 1
    # Authentication (docs/security.md); secrets never appear in a repr or a log line.
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)
    tls_required: bool = False
    inbox_prefix: str | None = None
    # Monitoring URLs (http://host:8222) of external servers: naqd reads their /varz to
    # warn when a power cut could lose acknowledged jobs (docs/operations.md).
    monitoring: tuple[str, ...] = ()

    @property
    def urls(self) -> list[str]:
        """Servers to connect to: the configured ones, or the embedded server's."""
        if self.servers:
            return list(self.servers)
        return [f"nats://{self.embedded.listen}"]


@dataclass(frozen=True)
class TasksConfig:
    imports: tuple[str, ...] = ()
    serializer: Literal["json", "pickle"] = "json"
    # Security (docs/security.md): what may run, who may send it, how big it may be.
    allow: tuple[str, ...] = ()
    signing_key: str | None = field(default=None, repr=False)
    signing_key_file: str | None = None
    accepted_keys: tuple[str, ...] = field(default=(), repr=False)
    sign_json: bool = False
    max_payload: int = 1024 * 1024


@dataclass(frozen=True)
class BackoffConfig:
    """Delay before retry n: `delays[n-1]` (the last repeats) when delays are given, else
    the strategy's curve from `base`, capped at `max`, shortened by up to `jitter` (0-1)."""

    strategy: Literal["exponential", "linear", "fixed"] = "exponential"
    base: float = 1.0
    max: float = 300.0
    jitter: float = 0.1
    delays: tuple[float, ...] = ()


PREFETCH_PER_SLOT = 3  # the default prefetch: jobs held per slot (docs/performance.md)
PREFETCH_MAX = 100  # ... and at most this many: a busy high-concurrency worker needs none


@dataclass(frozen=True)
class QueueConfig:
    name: str
    concurrency: int = 16
    processes: int = 1
    timeout: float = 300.0
    retries: int = 3
    ack_wait: float = 30.0
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    retry_on: tuple[str, ...] = ()  # exception class names; empty: every exception
    dont_retry_on: tuple[str, ...] = ()
    max_deliveries: int | None = None  # consumer max_deliver; None: retries + 10
    max_jobs_per_process: int = 0  # recycle the process after this many jobs; 0: never
    max_jobs_jitter: int | None = None  # None: 10 % of max_jobs_per_process
    max_memory_per_process: int = 0  # bytes of RSS that trigger a recycle; 0: never

    @property
    def deliveries(self) -> int:
        """The consumer's max_deliver: room above the attempts for shutdown hand-backs."""
        return self.max_deliveries or self.retries + 10

    max_in_flight: int | None = None  # jobs delivered and unacked, across every host
    rate: float | None = None  # jobs started per second, across every host
    priorities: tuple[str, ...] = ()  # level names, highest first; includes "default"
    prefetch: int | None = None  # jobs a process holds waiting for a slot; None: the default

    @property
    def prefetch_jobs(self) -> int:
        """Jobs one worker process may hold beyond its `concurrency` slots
        (docs/configuration.md, "prefetch"): `prefetch` when set; by default
        PREFETCH_PER_SLOT per slot up to PREFETCH_MAX (held only while the queue's jobs are short,
        worker/prefetch.py), but none for a queue with priorities (a held job would run
        before a higher level's newer one) or with `max_in_flight` (held jobs would take
        the cluster-wide budget from idle processes)."""
        if self.prefetch is not None:
            return self.prefetch
        if len(self.priorities) > 1 or self.max_in_flight is not None:
            return 0
        return min(PREFETCH_MAX, PREFETCH_PER_SLOT * self.concurrency)


@dataclass(frozen=True)
class PoolConfig:
    """Queues served together by each of `processes` worker processes (docs/configuration.md,
    "pools"). Each queue keeps its own slots and policies; what belongs to a process
    (how many, when to recycle it) is set here, not on its queues."""

    name: str
    queues: tuple[str, ...] = ()
    processes: int = 1
    max_jobs_per_process: int = 0  # jobs of all its queues together; 0: never
    max_jobs_jitter: int | None = None  # None: 10 % of max_jobs_per_process
    max_memory_per_process: int = 0  # bytes of RSS that trigger a recycle; 0: never


@dataclass(frozen=True)
class ScheduleConfig:
    name: str
    task: str
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    enabled: bool = True
    missed: Literal["skip", "run_once"] = "run_once"
    jitter: float = 0.0
    retries: int | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class LeaderElectionConfig:
    lease: float = 15.0
    renew_every: float = 5.0


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)


@dataclass(frozen=True)
class HeartbeatConfig:
    interval: float = 5.0


@dataclass(frozen=True)
class ResultsConfig:
    ttl: float = 7 * 86400.0
    keep_args: bool = False  # the job's args/kwargs in its result record (Celery's result_extended)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"
    enabled: bool = True  # the HTTP endpoint: /metrics, /healthz
    health_grace: float = 5.0  # seconds a restarting child may be missing before /healthz fails


@dataclass(frozen=True)
class DeadLettersConfig:
    max_age: float = 30 * 86400.0


@dataclass(frozen=True)
class AuditConfig:
    """The audit trail of operator actions (the NAQD_AUDIT stream)."""

    max_age: float = 90 * 86400.0
    max_entries: int = 1_000_000


@dataclass(frozen=True)
class ShutdownConfig:
    grace_period: float = 30.0


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"


Role = Literal["viewer", "operator"]


@dataclass(frozen=True)
class DashboardUser:
    """A console login. `password_hash` comes from `naqd dashboard hash-password`; a user
    without one can only arrive through the trusted proxy header (which then takes its
    role from here)."""

    name: str
    password_hash: str | None = field(default=None, repr=False)
    role: Role = "viewer"


@dataclass(frozen=True)
class DashboardToken:
    """An API token, sent as `Authorization: Bearer <token>`."""

    name: str
    token: str = field(default="", repr=False)
    role: Role = "viewer"


@dataclass(frozen=True)
class DashboardProxyConfig:
    """Trust a user-name header set by an authenticating proxy (oauth2-proxy), but only
    on requests from these addresses or networks."""

    header: str = "X-Forwarded-User"
    trusted: tuple[str, ...] = ()
    role: Role = "viewer"  # for proxy users not listed under dashboard.users


@dataclass(frozen=True)
class DashboardConfig:
    enabled: bool = True  # false keeps the section but runs no console child
    listen: str = "127.0.0.1:9465"
    users: dict[str, DashboardUser] = field(default_factory=dict)
    tokens: dict[str, DashboardToken] = field(default_factory=dict)
    proxy: DashboardProxyConfig | None = None
    # Signs session cookies; unset: a random key per process (sessions end on restart).
    secret_key: str | None = field(default=None, repr=False)
    secret_key_file: str | None = None
    session_ttl: float = 12 * 3600.0
    login_attempts: int = 5  # failed logins per address and minute before 429
    live_clients: int = 64  # concurrent event streams (each page holds one)

    @property
    def authenticated(self) -> bool:
        """Anyone configured who can log in: without it the console is read-only and
        loopback-only."""
        return bool(self.users or self.tokens or self.proxy)


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry in the daemon (docs/extending.md#opentelemetry). `enabled: auto`
    (None): on when the `otel` extra is installed and OTEL_EXPORTER_OTLP_ENDPOINT or
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (or `endpoint`) is set; `true` requires the extra."""

    enabled: bool | None = None  # None: auto
    endpoint: str | None = None  # OTLP/HTTP base URL; the OTEL_* variables win when set


@dataclass(frozen=True)
class SentryConfig:
    """Sentry in the daemon (docs/extending.md#sentry): on when a DSN is given here or in
    SENTRY_DSN and the `sentry` extra is installed."""

    dsn: str | None = None
    environment: str | None = None
    report: Literal["dead_letter", "every_failure"] = "dead_letter"
    monitors: bool = True  # cron check-ins from the elected scheduler


@dataclass(frozen=True)
class Config:
    path: str = "<defaults>"
    nats: NatsConfig = field(default_factory=NatsConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    queues: dict[str, QueueConfig] = field(
        default_factory=lambda: {"default": QueueConfig(name="default")}
    )
    pools: dict[str, PoolConfig] = field(default_factory=dict)
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    dead_letters: DeadLettersConfig = field(default_factory=DeadLettersConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    sentry: SentryConfig = field(default_factory=SentryConfig)
    # "module:attr" of each middleware (naqd/middleware.py), in the order they run.
    middleware: tuple[str, ...] = ()
    dashboard: DashboardConfig | None = None  # a section present: `naqd run` supervises it

    def pool_of(self, queue: str) -> PoolConfig | None:
        """The pool that serves `queue`, or None when it has processes of its own."""
        for pool in self.pools.values():
            if queue in pool.queues:
                return pool
        return None

    def served_by(self, name: str) -> tuple[QueueConfig, ...]:
        """The queues one worker process of `name` (a pool, else a queue) serves."""
        pool = self.pools.get(name)
        if pool is not None:
            return tuple(self.queues[q] for q in pool.queues)
        return (self.queues[name],)
