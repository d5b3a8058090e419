"""The wire format, shared by the client and the daemon: names, envelopes, result
records, and the schedule model (definitions, ticks, the schedule KV); see
docs/protocol.md. Never imports config; only resources.py, which the daemon and the CLI
use to create streams, needs a daemon dependency (loguru)."""
