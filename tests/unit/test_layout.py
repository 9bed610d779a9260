"""The test tree itself: pytest imports test modules by basename (the folders are not packages),
so two test files with one name break collection of the whole suite on a fresh clone."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_names_are_unique():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [name for name, count in names.items() if count > 1]
