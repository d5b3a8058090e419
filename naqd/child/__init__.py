"""What the worker and scheduler child processes share: their boot (naqd/child/boot.py)."""
