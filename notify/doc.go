// Package notify delivers alerts to Mattermost incoming webhooks through a
// durable outbox in the store. (Arrives with the alerts issue.)
package notify
