"""airflow.utils.dates."""

import datetime


def days_ago(n, hour=0, minute=0, second=0, microsecond=0):
    """Today at the given time (midnight by default) in UTC, minus n days."""
    today = datetime.datetime.now(datetime.timezone.utc).replace(
        hour=hour, minute=minute, second=second, microsecond=microsecond
    )
    return today - datetime.timedelta(days=n)
