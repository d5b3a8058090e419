"""Observability: Prometheus metrics, heartbeats (local and in KV), the supervisor's HTTP
endpoint and the status data `naqd status` shows."""
