"""Observability: Prometheus metrics, heartbeats (local and in KV), the supervisor's HTTP
endpoint and the status data shared by `naqd status` and the status page."""
