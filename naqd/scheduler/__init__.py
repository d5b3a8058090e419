"""The scheduler child: leader election, cron/interval firing, dependent jobs."""
