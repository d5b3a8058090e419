"""What a JetStream ack subject says about a delivery, read without nats-py's Metadata
(a dataclass and a datetime per message: measurable on a worker's hot path)."""

from __future__ import annotations

# $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
_V1_TOKENS = 9
# $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>... (+ a random token)
_V2_DELIVERED = 6


def num_delivered(reply: str) -> int:
    """How many times this message has been delivered; ValueError if `reply` is not a
    JetStream ack subject."""
    tokens = reply.split(".")
    if len(tokens) < _V1_TOKENS or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise ValueError(f"not a JetStream ack subject: {reply[:80]!r}")
    return int(tokens[4] if len(tokens) == _V1_TOKENS else tokens[_V2_DELIVERED])
