"""The validated configuration: plain frozen dataclasses, picklable so the supervisor
can hand them to spawned children. All durations are seconds (float)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class EmbeddedNatsConfig:
    listen: str = "127.0.0.1:4222"
    store_dir: str = "./var/nats"


@dataclass(frozen=True)
class NatsConfig:
    servers: tuple[str, ...] = ()
    embedded: EmbeddedNatsConfig = field(default_factory=EmbeddedNatsConfig)
    replicas: int = 1

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


@dataclass(frozen=True)
class QueueConfig:
    name: str
    concurrency: int = 16
    processes: int = 1
    timeout: float = 300.0
    retries: int = 3
    ack_wait: float = 30.0
    max_in_flight: int | None = None  # jobs delivered and unacked, across every host
    rate: float | None = None  # jobs started per second, across every host
    priorities: tuple[str, ...] = ()  # level names, highest first; includes "default"


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


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class ShutdownConfig:
    grace_period: float = 30.0


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class Config:
    path: str = "<defaults>"
    nats: NatsConfig = field(default_factory=NatsConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    queues: dict[str, QueueConfig] = field(
        default_factory=lambda: {"default": QueueConfig(name="default")}
    )
    schedules: dict[str, ScheduleConfig] = field(default_factory=dict)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    results: ResultsConfig = field(default_factory=ResultsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
