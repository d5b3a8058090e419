"""docs/testing.md shows files that the suite runs (examples/testing, the Django test):
its copies must stay the files, or the doc drifts from what is tested."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FENCE = "`" * 3


def block_after(text: str, marker: str) -> str:
    start = text.index(FENCE + "python\n", text.index(marker)) + len(FENCE + "python\n")
    return text[start : text.index(FENCE + "\n", start)]


@pytest.mark.parametrize(
    ("marker", "path", "from_line"),
    [
        ("The tasks of a small shop (`examples/testing/shop.py`):", "examples/testing/shop.py", ""),
        ("Their tests (`examples/testing/test_shop.py`;", "examples/testing/test_shop.py", ""),
        ("## A FastAPI endpoint", "examples/testing/test_webapp.py", ""),
        ("## A Django test", "tests/django_project/shop/tests.py", "class EnqueueOnCommitTests"),
    ],
)
def test_the_doc_shows_the_tested_file(marker: str, path: str, from_line: str) -> None:
    shown = block_after((REPO / "docs/testing.md").read_text(), marker)
    source = (REPO / path).read_text()
    assert shown == source[source.index(from_line) :], f"docs/testing.md differs from {path}"
