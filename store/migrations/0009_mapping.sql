-- Dynamic task mapping: a mapped task has one task instance per map index
-- (0, 1, ...), an unmapped one map index -1, as in Airflow. The map index
-- joins the keys of task instances, their tries and their log copies.
-- map_input holds what an expanded instance was given (JSON), and
-- rendered_map_index its label (map_index_template).
CREATE TABLE task_instances_mapped (
    dag_id             TEXT NOT NULL,
    run_id             TEXT NOT NULL,
    task_id            TEXT NOT NULL,
    map_index          INTEGER NOT NULL DEFAULT -1,
    state              TEXT NOT NULL,
    try_number         INTEGER NOT NULL,
    max_tries          INTEGER NOT NULL,
    operator           TEXT NOT NULL,
    pool               TEXT NOT NULL,
    pool_slots         INTEGER NOT NULL,
    priority_weight    INTEGER NOT NULL,
    queued_at          TEXT,
    start_date         TEXT,
    end_date           TEXT,
    next_try_at        TEXT,
    map_input          TEXT NOT NULL DEFAULT '',
    rendered_map_index TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (dag_id, run_id, task_id, map_index)
);
INSERT INTO task_instances_mapped (dag_id, run_id, task_id, map_index, state, try_number, max_tries, operator, pool,
    pool_slots, priority_weight, queued_at, start_date, end_date, next_try_at)
    SELECT dag_id, run_id, task_id, -1, state, try_number, max_tries, operator, pool, pool_slots, priority_weight,
    queued_at, start_date, end_date, next_try_at FROM task_instances;
DROP TABLE task_instances;
ALTER TABLE task_instances_mapped RENAME TO task_instances;
CREATE INDEX task_instances_state ON task_instances (state);

CREATE TABLE task_tries_mapped (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL DEFAULT -1,
    try_number INTEGER NOT NULL,
    state      TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date   TEXT,
    exit_code  INTEGER,
    reason     TEXT NOT NULL DEFAULT '',
    executor   TEXT NOT NULL,
    handle     TEXT NOT NULL DEFAULT '',
    log_path   TEXT NOT NULL DEFAULT '',
    hostname   TEXT NOT NULL DEFAULT '',
    rendered   TEXT NOT NULL DEFAULT '{}',
    owner      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number)
);
INSERT INTO task_tries_mapped (dag_id, run_id, task_id, map_index, try_number, state, start_date, end_date, exit_code,
    reason, executor, handle, log_path, hostname, rendered, owner)
    SELECT dag_id, run_id, task_id, -1, try_number, state, start_date, end_date, exit_code, reason, executor, handle,
    log_path, hostname, rendered, owner FROM task_tries;
DROP TABLE task_tries;
ALTER TABLE task_tries_mapped RENAME TO task_tries;
CREATE INDEX task_tries_unfinished ON task_tries (end_date, owner);

CREATE TABLE log_chunks_mapped (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL DEFAULT -1,
    try_number INTEGER NOT NULL,
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, try_number, start_at)
);
INSERT INTO log_chunks_mapped (dag_id, run_id, task_id, map_index, try_number, start_at, end_at, data)
    SELECT dag_id, run_id, task_id, -1, try_number, start_at, end_at, data FROM log_chunks;
DROP TABLE log_chunks;
ALTER TABLE log_chunks_mapped RENAME TO log_chunks;
