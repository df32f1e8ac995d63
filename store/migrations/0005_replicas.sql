-- Several servers on one database: each registers and beats, and each try
-- records the server that started (or adopted) it, so another can take
-- over the tries of one that died.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    started_at TEXT NOT NULL,
    beat_at    TEXT NOT NULL
);
ALTER TABLE task_tries ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX task_tries_unfinished ON task_tries (end_date, owner);
