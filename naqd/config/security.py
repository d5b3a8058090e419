"""Cross-field rules for the security keys (nats auth/TLS, task signing): settings that
only make sense together, or that contradict each other, are config errors at load."""

from __future__ import annotations

from typing import Any

from yaml.nodes import Node

from naqd.config.walk import Ctx, Items, join

# Keys that may not be set together (the second named is blamed).
_NATS_EXCLUSIVE = (
    ("password", "password_file"),
    ("token", "token_file"),
    ("creds_file", "nkey_seed_file"),
)
_NATS_IDENTITIES = ("user", "token", "token_file", "creds_file", "nkey_seed_file")


def _later(items: Items, keys: tuple[str, ...]) -> str:
    return max(keys, key=lambda k: items[k][0].start_mark.index)


def check_nats_auth(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    for pair in _NATS_EXCLUSIVE:
        if all(k in items for k in pair):
            blame = _later(items, pair)
            ctx.error(items[blame][0], join(path, blame), f"set either {pair[0]} or {pair[1]}")
    identities = tuple(k for k in _NATS_IDENTITIES if k in items)
    if len(identities) > 1 and not (set(identities) <= {"token", "token_file"}):
        blame = _later(items, identities)
        ctx.error(
            items[blame][0],
            join(path, blame),
            f"choose one way to authenticate, not {' and '.join(identities)}",
        )
    has_password = "password" in items or "password_file" in items
    if "user" in items and not has_password:
        ctx.error(items["user"][0], join(path, "user"), "user needs password or password_file")
    if has_password and "user" not in items:
        key = "password" if "password" in items else "password_file"
        ctx.error(items[key][0], join(path, key), "a password needs a user")


def check_tls(values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str) -> None:
    for key, other in (("cert_file", "key_file"), ("key_file", "cert_file")):
        if key in items and other not in items:
            ctx.error(items[key][0], join(path, key), f"{key} needs {other} too")


def check_tasks_security(
    values: dict[str, Any], items: Items, where: Node, ctx: Ctx, path: str
) -> None:
    has_key = "signing_key" in items or "signing_key_file" in items
    if "signing_key" in items and "signing_key_file" in items:
        blame = _later(items, ("signing_key", "signing_key_file"))
        ctx.error(items[blame][0], join(path, blame), "set either signing_key or signing_key_file")
    if values.get("serializer") == "pickle" and not has_key:
        node = items["serializer"][1]
        ctx.error(
            node,
            join(path, "serializer"),
            "pickle runs whatever code the payload names: it requires tasks.signing_key "
            "(e.g. ${NAQD_SIGNING_KEY}) or tasks.signing_key_file",
        )
    if values.get("sign_json") and not has_key:
        node = items["sign_json"][1]
        ctx.error(node, join(path, "sign_json"), "sign_json requires tasks.signing_key or "
                  "tasks.signing_key_file")  # fmt: skip
    if "accepted_keys" in items and not has_key:
        node = items["accepted_keys"][0]
        ctx.error(node, join(path, "accepted_keys"), "accepted_keys needs a signing key too")
