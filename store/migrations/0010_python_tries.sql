-- Keys the server signs with (the per-try credentials of Python tasks),
-- shared by every replica, created once.
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- What a Python callable pod reported through the Execution API: its
-- outcome, XComs and branch, read when the end of the pod is seen. One row per
-- try: a new try of the task instance has its own.
CREATE TABLE try_results (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL DEFAULT -1,
    try_number INTEGER NOT NULL,
    result     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);
