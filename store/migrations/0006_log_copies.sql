-- Copies of try logs that every replica can read: the replica running a
-- try appends what its executor wrote, chunk by chunk, each at its byte
-- offset in the log.
CREATE TABLE log_chunks (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    start_at   BIGINT NOT NULL,
    end_at     BIGINT NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, try_number, start_at)
);
