"""``t2t feed``: tools for ITCH 5.0 files and captures (filled in by the ingest work)."""

__all__ = ["register"]


def register(subparsers):
    pass
