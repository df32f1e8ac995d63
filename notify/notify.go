package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// Bag is the DAGs as loaded: their callbacks choose channels and texts.
type Bag interface {
	Current() (*dags.Result, time.Time)
}

// Options configure the notifier.
type Options struct {
	Store *store.Store
	Bag   Bag
	// WebhookURL returns the incoming webhook's URL; it is called for each
	// delivery, so a URL kept in a secret file can change without a restart.
	WebhookURL func() (string, error)
	Channel    string // default channel ("" = the webhook's own)
	Username   string // default "updraft"
	IconURL    string
	// PublicURL is the UI's address for links ("" = no links).
	PublicURL string
	// Send chooses the optional events: "retry", "success", "recovery",
	// "marked" (Airflow sends nothing for a manual mark).
	Send map[string]bool
	// GroupWindow holds a run's task failures this long, so failures that
	// come together are told in one message (default 10 s).
	GroupWindow time.Duration
	// MaxAge gives up on an event this old (0, the default: never; an
	// alert is retried until the webhook takes it).
	MaxAge    time.Duration
	RetryBase time.Duration // the first retry's delay, doubling to 5 min (default 2 s)
	LogLines  int           // log lines quoted in a task failure (default 20)
	// Timeout is how long a post may take before its outcome counts as
	// unknown (default 30 s: a Mattermost under load posts, then answers).
	Timeout time.Duration
	Client  *http.Client // default: no timeout of its own (Timeout bounds a post)
	Now     func() time.Time
	Log     *slog.Logger
	// Mask masks secret values in every message before it is posted (the
	// server's masker: values stay masked after they are rotated).
	Mask *dags.Masker
}

// Notifier delivers the outbox. Run it once per process; several
// processes on one database would each deliver (the PostgreSQL issue adds
// claiming).
type Notifier struct {
	o    Options
	wake chan struct{}
}

// New returns a notifier.
func New(o Options) *Notifier {
	if o.Username == "" {
		o.Username = "updraft"
	}
	if o.GroupWindow <= 0 {
		o.GroupWindow = 10 * time.Second
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 2 * time.Second
	}
	if o.LogLines <= 0 {
		o.LogLines = 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{o: o, wake: make(chan struct{}, 1)}
}

// Enabled reports whether alerts are sent anywhere.
func (n *Notifier) Enabled() bool { return n.o.WebhookURL != nil }

// Wake asks for a look at the outbox now (the scheduler recorded events).
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. It looks at the outbox when woken, when the
// next event is due, and at least every second (the scheduler records
// events without telling it).
func (n *Notifier) Run(ctx context.Context) error {
	for {
		next, err := n.Step(ctx)
		if err != nil && ctx.Err() == nil {
			n.o.Log.Error("alert delivery step failed", "err", err)
		}
		wait := time.Second
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(n.o.Now()), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-time.After(wait):
		}
	}
}

// alertsLock is the key under which one replica at a time delivers.
const alertsLock = 7261738

// Step delivers every due event once and returns when the next is due.
// Servers sharing a database take turns: a step that finds another one
// delivering does nothing.
func (n *Notifier) Step(ctx context.Context) (time.Time, error) {
	var next time.Time
	err := n.o.Store.OneAtATime(ctx, alertsLock, func() error {
		var err error
		next, err = n.step(ctx)
		return err
	})
	return next, err
}

func (n *Notifier) step(ctx context.Context) (time.Time, error) {
	now := n.o.Now()
	pending, err := n.o.Store.PendingAlerts(ctx, 1000)
	if err != nil {
		return time.Time{}, err
	}
	// A message waiting for its retry because the webhook failed holds the
	// younger messages of its channel until then: they go out after it, in
	// the order their events happened.
	held := map[string]store.Alert{}
	var due []store.Alert
	for _, a := range pending {
		if a.NextAt.After(now) {
			if h, ok := held[a.Channel]; a.HasChannel && a.Holds && (!ok || a.ID < h.ID) {
				held[a.Channel] = a
			}
			continue
		}
		due = append(due, a)
	}
	var waitUntil time.Time
	q := channelQueues{held: held, blocked: map[string]time.Time{}}
	for _, g := range n.group(due, now, &waitUntil) {
		if err := n.deliver(ctx, g, &q); err != nil {
			return time.Time{}, err
		}
	}
	next, err := n.o.Store.NextAlertDue(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !waitUntil.IsZero() && (next.IsZero() || waitUntil.Before(next) || !next.After(now)) {
		next = waitUntil
	}
	return next, nil
}

// channelQueues keep one step's messages in order per channel: held are
// the oldest messages waiting for a retry, blocked the channels whose
// webhook failed in this step (until when).
type channelQueues struct {
	held    map[string]store.Alert
	blocked map[string]time.Time
}

// wait says until when a message of channel (its first event id) must
// wait for an older one, or zero.
func (q *channelQueues) wait(channel string, id int64) time.Time {
	if t, ok := q.blocked[channel]; ok {
		return t
	}
	if h, ok := q.held[channel]; ok && h.ID < id {
		return h.NextAt
	}
	return time.Time{}
}

// group sorts due events into messages: a run's failures (its failed
// tasks and the run itself) go together once the oldest is GroupWindow
// old; every other event alone. Events held back set *waitUntil.
func (n *Notifier) group(due []store.Alert, now time.Time, waitUntil *time.Time) [][]store.Alert {
	runs := map[string][]store.Alert{}
	var order []string
	var out [][]store.Alert
	for _, a := range due {
		if a.Kind == store.AlertTaskFailed || a.Kind == store.AlertRunFailed {
			key := a.DagID + "\x00" + a.RunID
			if _, ok := runs[key]; !ok {
				order = append(order, key)
			}
			runs[key] = append(runs[key], a)
			continue
		}
		out = append(out, []store.Alert{a})
	}
	for _, key := range order {
		g := runs[key]
		oldest := g[0].CreatedAt
		hasRun := false
		for _, a := range g {
			hasRun = hasRun || a.Kind == store.AlertRunFailed
		}
		// The run's own failure closes the group; otherwise wait a little
		// for the others of the same run.
		if !hasRun && now.Sub(oldest) < n.o.GroupWindow {
			at := oldest.Add(n.o.GroupWindow)
			if waitUntil.IsZero() || at.Before(*waitUntil) {
				*waitUntil = at
			}
			continue
		}
		out = append(out, g)
	}
	return out
}

// Message is Mattermost's incoming-webhook payload (Slack-compatible).
type Message struct {
	Text        string       `json:"text"`
	Channel     string       `json:"channel,omitempty"`
	Username    string       `json:"username,omitempty"`
	IconURL     string       `json:"icon_url,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Attachment is a message attachment: a coloured box with fields.
type Attachment struct {
	Fallback  string  `json:"fallback"`
	Color     string  `json:"color,omitempty"`
	Title     string  `json:"title,omitempty"`
	TitleLink string  `json:"title_link,omitempty"`
	Text      string  `json:"text,omitempty"`
	Fields    []Field `json:"fields,omitempty"`
}

// Field is one short fact of an attachment.
type Field struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

// deliver sends one message for a group of events, or skips them when
// nobody asked for them, and records the outcome on every event. A send
// whose outcome could not be known (a timeout, a connection lost after the
// request went out, a crash during it) is sent again once, marked as a
// possible repeat, and never a third time.
func (n *Notifier) deliver(ctx context.Context, g []store.Alert, q *channelQueues) error {
	ids := make([]int64, len(g))
	for i, a := range g {
		ids[i] = a.ID
	}
	msg, send, err := n.compose(ctx, g)
	if err != nil {
		return err
	}
	now := n.o.Now()
	if !send || n.o.WebhookURL == nil {
		return n.o.Store.SettleAlerts(ctx, ids, store.AlertSkipped, now, now, "", store.AlertOutcome{})
	}
	if until := q.wait(msg.Channel, g[0].ID); !until.IsZero() {
		return n.o.Store.DeferAlerts(ctx, ids, msg.Channel, until)
	}
	first := g[0]
	uncertain, why := first.Uncertain, first.UncertainWhy
	if first.InFlightAt != nil { // the process died during the last attempt
		uncertain = uncertain + 1
		if why == "" {
			why = "the first attempt was interrupted by a restart"
		}
		if err := n.o.Store.SettleAlerts(ctx, ids, store.AlertPending, now, now, why, store.AlertOutcome{Uncertain: true, Why: why}); err != nil {
			return err
		}
	}
	if uncertain > 1 {
		// Two sends may both have been posted already: a third is not
		// made. Recorded as sent, with why it is not confirmed.
		n.o.Log.Warn("alert not confirmed after a resend; not sent again", "kind", first.Kind, "dag_id", first.DagID)
		return n.o.Store.SettleAlerts(ctx, ids, store.AlertSent, now, now, "not confirmed: "+why, store.AlertOutcome{})
	}
	if uncertain == 1 {
		msg = markResent(msg, why)
	}
	if err := n.o.Store.StartAlertAttempt(ctx, ids, msg.Channel, now); err != nil {
		return err
	}
	status, retryAfter, outcome, postErr := n.post(ctx, msg)
	end := n.o.Now()
	if postErr == nil {
		n.o.Log.Info("alert sent", "kind", first.Kind, "dag_id", first.DagID, "run_id", first.RunID, "events", len(g), "resent", uncertain == 1)
		return n.o.Store.SettleAlerts(ctx, ids, store.AlertSent, end, end, "", store.AlertOutcome{})
	}
	attempts := first.Attempts + 1
	if n.o.MaxAge > 0 && end.Sub(first.CreatedAt) >= n.o.MaxAge {
		n.o.Log.Error("alert given up", "kind", first.Kind, "dag_id", first.DagID, "attempts", attempts, "err", postErr)
		return n.o.Store.SettleAlerts(ctx, ids, store.AlertFailed, end, end, postErr.Error(), store.AlertOutcome{})
	}
	if outcome == postUncertain && uncertain == 1 {
		n.o.Log.Warn("alert resent and again not confirmed; not sent again", "kind", first.Kind, "dag_id", first.DagID, "err", postErr)
		return n.o.Store.SettleAlerts(ctx, ids, store.AlertSent, end, end, "not confirmed: "+postErr.Error(), store.AlertOutcome{Uncertain: true})
	}
	// Backoff counts from the end of the attempt, so a slow answer does not
	// use it up.
	next := end.Add(backoff(n.o.RetryBase, attempts))
	if retryAfter > 0 {
		next = end.Add(retryAfter)
	}
	holds := outcome != postRefusedMessage
	if holds {
		q.blocked[msg.Channel] = next
	}
	lastError, note := postErr.Error(), ""
	if outcome == postUncertain {
		note = "the first attempt " + describeUncertain(postErr)
	}
	n.o.Log.Warn("alert not delivered; will retry", "kind", first.Kind, "dag_id", first.DagID, "status", status,
		"attempt", attempts, "retry_at", next.UTC().Format(time.RFC3339), "err", postErr)
	return n.o.Store.SettleAlerts(ctx, ids, store.AlertPending, end, next, lastError, store.AlertOutcome{Uncertain: outcome == postUncertain, Why: note, Holds: holds})
}

// markResent marks a message sent again after a send whose outcome was
// unknown: its reader may have seen it already.
func markResent(msg Message, why string) Message {
	note := "_(resent: " + why + ")_"
	if msg.Text != "" {
		msg.Text += "\n" + note
	} else {
		msg.Text = note
	}
	return msg
}

// describeUncertain says why a send's outcome is unknown.
func describeUncertain(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	return "lost its connection before an answer"
}

// How a post ended when it did not succeed.
type postOutcome int

const (
	postNotSent        postOutcome = iota // nothing reached the webhook (no URL, connection refused)
	postRefused                           // the webhook answered an error of its own (5xx, 429, 408)
	postRefusedMessage                    // the webhook refused this message (another 4xx)
	postUncertain                         // the request went out and no answer came: it may have been posted
)

// backoff is base after the first failed attempt, doubling to at most 5 min.
func backoff(base time.Duration, attempts int) time.Duration {
	d := base
	for i := 1; i < attempts && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

// post sends a message. Any answer but 2xx is an error (with Retry-After
// for 429); the webhook URL never appears in errors or logs.
func (n *Notifier) post(ctx context.Context, msg Message) (int, time.Duration, postOutcome, error) {
	target, err := n.o.WebhookURL()
	if err != nil {
		return 0, 0, postNotSent, fmt.Errorf("webhook URL: %w", err)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, 0, postNotSent, errors.New("webhook URL: not an http(s) URL")
	}
	body, _ := json.Marshal(msg)
	body = []byte(n.o.Mask.Mask(string(body)))
	ctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, 0, postNotSent, errors.New("webhook request could not be built")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which holds the webhook's secret id
		}
		outcome := postUncertain
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			outcome = postNotSent // no connection: nothing was sent
		}
		return 0, 0, outcome, fmt.Errorf("post to %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, 0, 0, nil
	}
	outcome := postRefused
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
		outcome = postRefusedMessage
	}
	var wait time.Duration
	if resp.StatusCode == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(min(s, 3600)) * time.Second
		}
	}
	return resp.StatusCode, wait, outcome, fmt.Errorf("webhook answered %d: %s", resp.StatusCode, strings.TrimSpace(string(reply)))
}

// WebhookFromFile reads the webhook URL from a file at each delivery.
func WebhookFromFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", errors.New("webhook URL file unreadable")
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", errors.New("webhook URL file is empty")
		}
		return s, nil
	}
}

// sortedTasks returns the failed task ids of a group, sorted.
func sortedTasks(g []store.Alert) []string {
	var out []string
	for _, a := range g {
		if a.TaskID != "" {
			out = append(out, a.TaskID)
		}
	}
	sort.Strings(out)
	return out
}
