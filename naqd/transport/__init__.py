"""Talking to NATS, shared by the client and the daemon: connect options
(`connection.py`, daemon only), credentials and TLS (`natsauth.py`), pipelined stream
writes (`streamwriter.py`) and stopping background tasks (`cancelling.py`).

Nothing is imported here, so the client loads only the modules it uses (no loguru)."""
