"""Configuration: load one YAML file into validated, frozen dataclasses."""

from naqd.config.errors import ConfigError, ConfigIssue
from naqd.config.loader import load_config, parse_config
from naqd.models import (
    Config,
    EmbeddedNatsConfig,
    NatsConfig,
    PoolConfig,
    QueueConfig,
    ScheduleConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConfigIssue",
    "EmbeddedNatsConfig",
    "NatsConfig",
    "PoolConfig",
    "QueueConfig",
    "ScheduleConfig",
    "load_config",
    "parse_config",
]
