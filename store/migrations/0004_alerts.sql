-- The alert outbox: every event worth telling people about is recorded
-- here in the same transaction as the state change it is about, once (the
-- key is unique), and delivered from here by the notifier, which retries
-- until the webhook takes it.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key   TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    dag_id      TEXT NOT NULL DEFAULT '',
    run_id      TEXT NOT NULL DEFAULT '',
    task_id     TEXT NOT NULL DEFAULT '',
    try_number  INTEGER NOT NULL DEFAULT 0,
    file        TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     TEXT NOT NULL,
    last_error  TEXT NOT NULL DEFAULT '',
    sent_at     TEXT
);
CREATE INDEX alerts_due ON alerts (state, next_at);
