"""Worker processes: continuous pull, job runner, retry policy."""
