"""The reference workload's monitoring resolvers, as Python callables.

Each resolver reads the answers the HTTP checks pushed as XCom, keeps what
failed in the hour before it runs and returns the Mattermost message that
lists it; with nothing failed it skips, and so does the post after it. They
fail only on a missing or malformed answer, not on reported failures.
"""
import json
from datetime import datetime, timedelta, timezone

from airflow.exceptions import AirflowSkipException

from callables.timeutil import parse_time


def _data(ti, task_id):
    raw = ti.xcom_pull(task_ids=task_id)
    if raw is None:
        raise ValueError(f"no answer from {task_id}")
    return json.loads(raw)["data"]


def resolve_stitch(ti, **context):
    cutoff = datetime.now(timezone.utc) - timedelta(hours=1)
    failed = []
    for e in _data(ti, "stitch_extractions"):
        if e.get("tap_exit_status") and parse_time(e.get("completion_time")) > cutoff:
            detail = e.get("tap_description") or f"exit status {e['tap_exit_status']}"
            failed.append(f"- extraction of `{e['source_id']}` failed at {e['completion_time']}: {detail}")
    for load in _data(ti, "stitch_loads"):
        if load.get("error_state") and parse_time(load.get("last_batch_loaded_at")) > cutoff:
            detail = load["error_state"]["notification_data"]["warehouse_message"]
            failed.append(f"- load of `{load['source_name']}` failed at {load['last_batch_loaded_at']}: {detail}")
    if not failed:
        raise AirflowSkipException("nothing failed in the last hour")
    return "**STITCH**: :red_circle:\n" + "\n".join(failed)


def resolve_hightouch(ti, **context):
    cutoff = datetime.now(timezone.utc) - timedelta(hours=1)
    rows = [
        f"| [{s['slug']}](https://app.hightouch.com/syncs/{s['id']}) | {s['lastRunAt']} |"
        for s in _data(ti, "hightouch_syncs")
        if s.get("status") == "failed" and parse_time(s.get("lastRunAt")) > cutoff
    ]
    if not rows:
        raise AirflowSkipException("no sync failed in the last hour")
    return "**HIGHTOUCH**: :red_circle:\n| Sync | Last run |\n|:-----|:---------|\n" + "\n".join(rows)


def has_new_tables(check):
    """event_table_monitoring's short circuit: go on only with new tables."""
    return bool(json.loads(check)["new_tables"]) if isinstance(check, str) else bool(check["new_tables"])


def apply_format(check):
    """event_table_monitoring's formatter: one line per new table."""
    tables = (json.loads(check) if isinstance(check, str) else check)["new_tables"]
    return "\n".join(" - " + t for t in tables)
