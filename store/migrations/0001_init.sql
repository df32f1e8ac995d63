-- updraft metadata schema, version 1. Times are UTC text in a fixed-width
-- format (see store.go) so they sort as strings in every dialect.
CREATE TABLE dags (
    dag_id          TEXT PRIMARY KEY,
    is_paused       INTEGER NOT NULL,
    is_active       INTEGER NOT NULL,
    fileloc         TEXT NOT NULL,
    current_version TEXT NOT NULL,
    last_parsed_at  TEXT NOT NULL
);

CREATE TABLE dag_versions (
    dag_id     TEXT NOT NULL,
    version    TEXT NOT NULL,
    fileloc    TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dag_id, version)
);

CREATE TABLE dag_runs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    run_type            TEXT NOT NULL,
    logical_date        TEXT NOT NULL,
    data_interval_start TEXT NOT NULL,
    data_interval_end   TEXT NOT NULL,
    conf                TEXT NOT NULL,
    state               TEXT NOT NULL,
    queued_at           TEXT NOT NULL,
    start_date          TEXT,
    end_date            TEXT,
    dag_version         TEXT NOT NULL,
    external_trigger    INTEGER NOT NULL,
    note                TEXT NOT NULL DEFAULT '',
    UNIQUE (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state, dag_id);
CREATE INDEX dag_runs_dag_logical ON dag_runs (dag_id, logical_date);

CREATE TABLE task_instances (
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    state           TEXT NOT NULL,
    try_number      INTEGER NOT NULL,
    max_tries       INTEGER NOT NULL,
    operator        TEXT NOT NULL,
    pool            TEXT NOT NULL,
    pool_slots      INTEGER NOT NULL,
    priority_weight INTEGER NOT NULL,
    queued_at       TEXT,
    start_date      TEXT,
    end_date        TEXT,
    next_try_at     TEXT,
    PRIMARY KEY (dag_id, run_id, task_id)
);
CREATE INDEX task_instances_state ON task_instances (state);

CREATE TABLE task_tries (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
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
    PRIMARY KEY (dag_id, run_id, task_id, try_number)
);

CREATE TABLE variables (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_secret   INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
);

CREATE TABLE import_errors (
    filename  TEXT NOT NULL,
    line      INTEGER NOT NULL,
    col       INTEGER NOT NULL,
    dag_id    TEXT NOT NULL,
    message   TEXT NOT NULL,
    revision  TEXT NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE INDEX import_errors_file ON import_errors (filename);

CREATE TABLE pools (
    name        TEXT PRIMARY KEY,
    slots       INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Default pool');

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    dag_id  TEXT NOT NULL DEFAULT '',
    run_id  TEXT NOT NULL DEFAULT '',
    task_id TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
