"""HMAC-SHA256 job signatures: pure functions, no I/O but reading a key file.

The MAC covers the encoding name and the exact payload bytes, so a signed JSON job cannot
be relabelled as a pickle. The header names the key by an id derived from the key, so a
worker can hold several accepted keys while producers move to a new one (rotation).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from naqd.models import TasksConfig


MIN_KEY_LENGTH = 32


class SignatureError(ValueError):
    """A signature that is missing, malformed, from an unknown key, or wrong."""


def key_id(key: str) -> str:
    """A short public name for a key: leaks nothing useful about a 32+ character secret."""
    return hashlib.sha256(b"naqd-key-id\n" + key.encode()).hexdigest()[:16]


def _mac(key: bytes, encoding: str, payload: bytes) -> str:
    mac = hmac.new(key, encoding.encode() + b"\n", hashlib.sha256)
    mac.update(payload)
    return mac.hexdigest()


@dataclass(frozen=True)
class Keyring:
    """The key producers sign with, and every key workers accept (it included)."""

    signing_id: str
    keys: dict[str, bytes] = field(repr=False)

    @classmethod
    def from_keys(cls, signing_key: str, accepted: Iterable[str] = ()) -> Keyring:
        keys = {key_id(k): k.encode() for k in (signing_key, *accepted)}
        return cls(signing_id=key_id(signing_key), keys=keys)

    def sign(self, payload: bytes, encoding: str = "json") -> str:
        """The header value for `payload`: `<key id>:<hex>`."""
        return f"{self.signing_id}:{_mac(self.keys[self.signing_id], encoding, payload)}"

    def verify(self, payload: bytes, header: str | None, encoding: str = "json") -> str:
        """Check a header value; returns the key id used, raises SignatureError."""
        if not header:
            raise SignatureError("job is not signed")
        kid, sep, digest = header.partition(":")
        if not sep or not kid or len(digest) != 64:
            raise SignatureError("malformed signature header")
        key = self.keys.get(kid)
        if key is None:
            raise SignatureError(f"signed with unknown key id {kid[:32]!r}")
        if not hmac.compare_digest(_mac(key, encoding, payload), digest):
            raise SignatureError(f"bad signature (key id {kid})")
        return kid


def read_key_file(path: str) -> list[str]:
    """Keys from a file, one per line (blank lines and # comments skipped): the first
    signs, the others are still accepted (keep the old key there while rotating)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise ValueError(f"signing key file {path} holds no key")
    return keys


def keyring_from_config(tasks: TasksConfig) -> Keyring | None:
    """The configured keys (signing_key or signing_key_file, plus accepted_keys)."""
    if tasks.signing_key_file:
        try:
            keys = read_key_file(tasks.signing_key_file)
        except OSError as exc:
            raise ValueError(
                f"cannot read tasks.signing_key_file {tasks.signing_key_file}: "
                f"{exc.strerror or exc}"
            ) from None
    elif tasks.signing_key:
        keys = [tasks.signing_key]
    else:
        return None
    keys += list(tasks.accepted_keys)
    if any(len(k) < MIN_KEY_LENGTH for k in keys):
        raise ValueError(f"every signing key must be at least {MIN_KEY_LENGTH} characters long")
    return Keyring.from_keys(keys[0], keys[1:])
