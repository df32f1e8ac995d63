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
// survive a down webhook and a restart; it is retried with backoff (and
// Retry-After on 429) and given up, visibly, after MaxAge.
package notify
