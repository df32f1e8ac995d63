-- Alert delivery: the channel a message goes to (known once it has been
-- composed: messages for one channel go out in order), when an attempt was
-- started and not yet settled (a crash in flight leaves it set: the outcome
-- is unknown), and how many sends of it had an unknown outcome.
ALTER TABLE alerts ADD COLUMN channel TEXT;
ALTER TABLE alerts ADD COLUMN in_flight_at TEXT;
ALTER TABLE alerts ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
-- why the first send's outcome is unknown, for the resend's mark.
ALTER TABLE alerts ADD COLUMN uncertain_why TEXT NOT NULL DEFAULT '';
-- holds: the last attempt failed for a reason of the webhook (down, busy,
-- timed out), so younger messages of its channel wait for its retry.
ALTER TABLE alerts ADD COLUMN holds INTEGER NOT NULL DEFAULT 0;
