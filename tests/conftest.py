"""Test-session ordering: `make test` runs two pytest-xdist workers, one file per unit of work; the full-design
synthesis is by far the longest file, so it is scheduled first and the other worker takes everything else."""

LONGEST_FIRST = ("test_synthesis.py",)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)
