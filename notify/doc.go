// Package notify delivers alerts to a Mattermost incoming webhook (the
// Slack-compatible payload: text, channel, username, icon_url,
// attachments) from the store's durable outbox.
//
// The scheduler records each event (a task that failed for good, a failed
// run, a DAG file that stopped loading, ...) in the outbox in the same
// transaction as the change it is about. The Notifier reads due events,
// decides from its settings and the DAG file's callbacks whether and where
// to send them, groups the failures of one run into one message, and posts.
// An event leaves the outbox only when the webhook answered 2xx, so alerts
// survive a down webhook and a restart; it is retried with backoff counted
// from the end of each attempt (and Retry-After on 429), never given up
// unless MaxAge is set. An attempt is recorded before it starts: a send
// whose outcome is unknown (a timeout, a lost connection, a crash in
// flight) is resent once, marked as a possible repeat, and never a third
// time. Messages of one channel go out in the order of their events.
package notify
