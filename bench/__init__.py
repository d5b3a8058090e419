"""naqd benchmark: `make bench` (python -m bench). Never part of `make test`."""
