"""The wire format: names, envelopes and result records (see docs/protocol.md)."""
