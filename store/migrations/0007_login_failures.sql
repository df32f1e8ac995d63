-- Failed logins per user name and per client address, counted in a fixed
-- window, so that every replica slows the same guessing down.
CREATE TABLE login_failures (
    key      TEXT PRIMARY KEY,
    n        INTEGER NOT NULL,
    first_at TEXT NOT NULL
);
