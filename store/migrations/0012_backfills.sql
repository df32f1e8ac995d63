-- Backfills (Airflow 3): the runs of a DAG over a range of past logical
-- dates, created together when the backfill is, and started by the
-- scheduler under the max_active_runs of the backfill, in its order.
CREATE TABLE backfills (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id             TEXT NOT NULL,
    from_date          TEXT NOT NULL,
    to_date            TEXT NOT NULL,
    run_backwards      INTEGER NOT NULL,
    dag_run_conf       TEXT NOT NULL,
    reprocess_behavior TEXT NOT NULL,
    max_active_runs    INTEGER NOT NULL,
    is_paused          INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    completed_at       TEXT,
    created_by         TEXT NOT NULL DEFAULT ''
);
-- One backfill of a DAG at a time, as Airflow.
CREATE UNIQUE INDEX backfills_one_active ON backfills (dag_id) WHERE completed_at IS NULL;
-- Every logical date a backfill considered: the run it made or took over
-- (cleared again), or why it left the date alone.
CREATE TABLE backfill_runs (
    backfill_id      BIGINT NOT NULL,
    sort_ordinal     INTEGER NOT NULL,
    logical_date     TEXT NOT NULL,
    run_id           TEXT,
    exception_reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (backfill_id, sort_ordinal)
);
ALTER TABLE dag_runs ADD COLUMN backfill_id BIGINT;
