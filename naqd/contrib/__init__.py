"""Integrations with web frameworks (docs/integrations.md). Each module needs its
framework's extra (`naqd[fastapi]`, `naqd[django]`); nothing here is imported by naqd
itself, so the thin client stays thin."""
