-- Missed deadlines: a run that had not ended by its DAG deadline, or a
-- task that had not succeeded by its sla, recorded once each.
CREATE TABLE deadline_misses (
    dag_id      TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    task_id     TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL,
    deadline    TEXT NOT NULL,
    detected_at TEXT NOT NULL,
    what        TEXT NOT NULL,
    alerted     INTEGER NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, kind)
);
CREATE INDEX deadline_misses_detected ON deadline_misses (detected_at);
