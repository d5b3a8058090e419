"""A small application with typed tasks (docs/client.md#typed-tasks); type-checks under
`mypy --strict` (`make lint`)."""
