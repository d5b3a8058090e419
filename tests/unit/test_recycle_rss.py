"""SampledRss: the memory limit reads /proc at most every `every` seconds."""

from __future__ import annotations

from naqd.worker.recycle import RecycleLimits, SampledRss


def test_rss_is_read_again_only_after_its_interval() -> None:
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        return 100 * len(reads)

    sampled = SampledRss(every=3600, read=read)
    assert [sampled() for _ in range(1000)] == [100] * 1000
    assert len(reads) == 1
    sampled._next = 0.0  # the interval passed
    assert sampled() == 200


def test_a_limit_is_still_seen_through_the_sample() -> None:
    limits = RecycleLimits(max_jobs=0, max_rss=150)
    sampled = SampledRss(every=0.0, read=lambda: 200)
    assert "max_memory_per_process" in limits.exceeded(1, sampled)
