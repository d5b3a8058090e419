"""An application's tasks and their tests, run in-process with naqd.testing (docs/testing.md)."""
