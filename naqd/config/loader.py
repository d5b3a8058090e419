"""Entry points: read naq.yaml, validate it all, and either return a Config or raise one
ConfigError listing every problem with its `file:line:col: path:` position."""

from __future__ import annotations

import os
from collections.abc import Mapping

import yaml
from yaml.nodes import MappingNode

from naqd.config.errors import ConfigError, ConfigIssue
from naqd.config.schema import ROOT
from naqd.config.walk import INVALID, Ctx, is_null, shape
from naqd.models import Config
from naqd.values import describe


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at `path` (named in errors exactly as given)."""
    filename = os.fspath(path)
    return parse_config(read_config_text(filename), filename, env)


def read_config_text(filename: str) -> str:
    """The file's text, or a ConfigError that says why it cannot be read."""
    try:
        with open(filename, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigError([_file_issue(filename, "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([_file_issue(filename, "is a directory, not a config file")]) from None
    except UnicodeDecodeError as exc:
        line, column = _position(exc.object[: exc.start].decode("utf-8", "replace"), None)
        issue = ConfigIssue(filename, line, column, "", "the file is not valid UTF-8 text")
        raise ConfigError([issue]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([_file_issue(filename, f"cannot read config file: {reason}")]) from None


def parse_config(
    text: str, filename: str = "naq.yaml", env: Mapping[str, str] | None = None
) -> Config:
    """Validate YAML `text`; `env` feeds `${VAR}` interpolation (default: os.environ)."""
    ctx = Ctx(filename=filename, env=os.environ if env is None else env)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_syntax_issue(filename, text, exc)]) from None
    if node is None or is_null(node):
        return Config(path=filename)
    if not isinstance(node, MappingNode):
        found = shape(node) or ctx.value(node, "")
        if found is not INVALID:
            ctx.error(
                node, "", f"expected a mapping of sections at the top level, got {describe(found)}"
            )
        raise ConfigError(_sorted_unique(ctx.issues))
    return build_config(node, ctx)


def build_config(node: MappingNode, ctx: Ctx) -> Config:
    """Validate a composed mapping of sections (from a file, or built from `naqd worker`
    flags by naqd/config/flags.py) with every check of the schema."""
    config = ROOT.build(node, ctx, "", extra={"path": ctx.filename})
    if ctx.issues or config is INVALID:
        raise ConfigError(_sorted_unique(ctx.issues))
    assert isinstance(config, Config)
    return config


def _sorted_unique(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """File order reads best; duplicates arise when an anchor is merged twice."""
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.line or 0, i.column or 0))


def _file_issue(filename: str, message: str) -> ConfigIssue:
    return ConfigIssue(filename, None, None, "", message)


def _position(text: str, index: int | None) -> tuple[int, int]:
    """1-based line/column of character `index` in `text` (end of text if None)."""
    prefix = text if index is None else text[:index]
    line = prefix.count("\n") + 1
    return line, len(prefix) - (prefix.rfind("\n") + 1) + 1


def _syntax_issue(filename: str, text: str, exc: yaml.YAMLError) -> ConfigIssue:
    """One issue for a YAML syntax error, at the position PyYAML blames."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = (exc.problem or exc.context or "invalid YAML").removeprefix("but ")
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        if mark is not None:
            return ConfigIssue(
                filename, mark.line + 1, mark.column + 1, "", f"invalid YAML: {message}"
            )
        return ConfigIssue(filename, 1, 1, "", f"invalid YAML: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _position(text, exc.position)
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return ConfigIssue(
            filename, line, column, "", f"invalid YAML: unacceptable character {char}"
        )
    return ConfigIssue(filename, 1, 1, "", f"invalid YAML: {exc}")


__all__ = ["build_config", "load_config", "parse_config", "read_config_text"]
