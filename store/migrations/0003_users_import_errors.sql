-- Users of the web UI and the REST API, with one of Airflow's roles
-- (Viewer, User, Op, Admin), and their browser sessions. A session is kept
-- by the hash of its cookie value only.
CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    email         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    last_login    TEXT
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (username);

-- Import errors become one row per file, as Airflow keeps them: the id
-- stays the same while the file's errors do not change.
DROP TABLE import_errors;
CREATE TABLE import_errors (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    filename    TEXT NOT NULL UNIQUE,
    stack_trace TEXT NOT NULL,
    revision    TEXT NOT NULL,
    timestamp   TEXT NOT NULL
);
