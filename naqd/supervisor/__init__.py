"""The supervisor process: config in, children out; embedded nats-server."""
