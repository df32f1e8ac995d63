"""A helper module the callables import from the DAG folder."""
from datetime import datetime, timezone


def parse_time(text):
    """An RFC 3339 time (Z or an offset); the epoch when there is none."""
    if not text:
        return datetime.fromtimestamp(0, timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
