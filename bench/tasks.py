"""Tasks the benchmark's naqd workers run."""


def noop() -> None:
    return None


async def anoop() -> None:
    return None
