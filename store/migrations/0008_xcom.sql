-- XCom: the values a task instance hands to later tasks. One row per task
-- instance (map index) and key. A new try replaces what an earlier try of
-- the same task instance pushed, and clearing the task instance removes it.
CREATE TABLE xcom (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL DEFAULT -1,
    xcom_key   TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, xcom_key)
);
