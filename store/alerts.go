package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Alert states.
const (
	AlertPending = "pending" // waiting for (another) delivery attempt
	AlertSent    = "sent"    // the webhook took it
	AlertSkipped = "skipped" // nobody asked for this kind of alert
	AlertFailed  = "failed"  // given up after too many attempts
)

// Alert kinds.
const (
	AlertTaskFailed       = "task_failed"        // a task instance failed for good (no tries left)
	AlertTaskRetry        = "task_retry"         // a try failed and another will follow
	AlertTaskMarkedFailed = "task_marked_failed" // someone marked a task instance failed
	AlertRunFailed        = "run_failed"         // a run failed (a failed leaf, dagrun_timeout, deadlock)
	AlertRunSuccess       = "run_success"        // a run succeeded
	AlertRunMarkedFailed  = "run_marked_failed"  // someone marked a run failed
	AlertImportError      = "import_error"       // a DAG file stopped loading, or its errors changed
	AlertImportFixed      = "import_fixed"       // a DAG file with errors loads again
)

// Alert is one event in the outbox.
type Alert struct {
	ID                   int64
	Key                  string // unique per event: recording it twice is a no-op
	Kind                 string // task_failed, task_retry, run_failed, run_success, import_error, ...
	DagID, RunID, TaskID string
	Try                  int
	File                 string // the DAG file of import alerts
	Detail               string // reason, error text
	CreatedAt            time.Time
	State                string
	Attempts             int
	NextAt               time.Time
	LastError            string
	SentAt               *time.Time
	// Channel is where its message goes ("" the webhook's own), once it
	// has been composed; HasChannel says whether it has.
	Channel    string
	HasChannel bool
	// InFlightAt is set while an attempt is in flight: found set by a
	// later step, the process died during the attempt.
	InFlightAt   *time.Time
	Uncertain    int    // sends whose outcome could not be known
	UncertainWhy string // why the first of them is unknown
	Holds        bool   // its last attempt failed for the webhook's reasons: younger messages of its channel wait for it
}

// AddAlert records an event for the notifier. Within a transaction it
// commits with the state change it is about; an event already recorded
// (same key) is left as it is.
func (s *Store) AddAlert(ctx context.Context, a Alert) error {
	_, err := s.exec(ctx, `INSERT INTO alerts (event_key, kind, dag_id, run_id, task_id, try_number, file, detail, created_at, next_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_key) DO NOTHING`,
		a.Key, a.Kind, a.DagID, a.RunID, a.TaskID, a.Try, a.File, s.mask.Mask(a.Detail), ts(a.CreatedAt), ts(a.CreatedAt))
	return err
}

const alertCols = `id, event_key, kind, dag_id, run_id, task_id, try_number, file, detail, created_at, state, attempts, next_at, last_error, sent_at,
	channel, in_flight_at, uncertain, uncertain_why, holds`

func (s *Store) queryAlerts(ctx context.Context, q string, args ...any) ([]Alert, error) {
	rows, err := s.query(ctx, `SELECT `+alertCols+` FROM alerts `+q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var created, next string
		var sent, channel, inFlight sql.NullString
		if err := rows.Scan(&a.ID, &a.Key, &a.Kind, &a.DagID, &a.RunID, &a.TaskID, &a.Try, &a.File, &a.Detail, &created, &a.State,
			&a.Attempts, &next, &a.LastError, &sent, &channel, &inFlight, &a.Uncertain, &a.UncertainWhy, &a.Holds); err != nil {
			return nil, err
		}
		a.CreatedAt, a.NextAt, a.SentAt, a.InFlightAt = parseTS(created), parseTS(next), parseTSPtr(sent), parseTSPtr(inFlight)
		a.Channel, a.HasChannel = channel.String, channel.Valid
		out = append(out, a)
	}
	return out, rows.Err()
}

// PendingAlerts returns pending alerts, due or not, oldest first.
func (s *Store) PendingAlerts(ctx context.Context, limit int) ([]Alert, error) {
	return s.queryAlerts(ctx, `WHERE state = 'pending' ORDER BY id LIMIT ?`, limit)
}

// StartAlertAttempt records, before a message is posted, that an attempt
// for these alerts is in flight and which channel they go to. Committed
// before the post: a crash during it leaves the mark.
func (s *Store) StartAlertAttempt(ctx context.Context, ids []int64, channel string, at time.Time) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, id := range ids {
			if _, err := tx.exec(ctx, `UPDATE alerts SET in_flight_at = ?, channel = ? WHERE id = ? AND state = 'pending'`, ts(at), channel, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeferAlerts puts pending alerts off until next without an attempt (an
// older message of their channel goes first), recording their channel.
func (s *Store) DeferAlerts(ctx context.Context, ids []int64, channel string, next time.Time) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, id := range ids {
			if _, err := tx.exec(ctx, `UPDATE alerts SET next_at = ?, channel = ? WHERE id = ? AND state = 'pending'`, ts(next), channel, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// AlertOutcome is how an attempt ended, beyond its state.
type AlertOutcome struct {
	Uncertain bool   // the webhook may have posted it: the outcome is unknown
	Why       string // why, for the mark of a resend (with Uncertain)
	Holds     bool   // failed for the webhook's reasons: younger messages of the channel wait
}

// SettleAlerts records the outcome of an attempt (as SetAlertState) and
// clears its in-flight mark.
func (s *Store) SettleAlerts(ctx context.Context, ids []int64, state string, at, next time.Time, lastError string, o AlertOutcome) error {
	return s.InTx(ctx, func(tx *Store) error {
		if err := tx.SetAlertState(ctx, ids, state, at, next, lastError); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.exec(ctx, `UPDATE alerts SET in_flight_at = NULL, uncertain = uncertain + ?, holds = ? WHERE id = ?`,
				boolInt(o.Uncertain), boolInt(o.Holds), id); err != nil {
				return err
			}
			if o.Uncertain {
				if _, err := tx.exec(ctx, `UPDATE alerts SET uncertain_why = ? WHERE id = ? AND uncertain_why = ''`, o.Why, id); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// DueAlerts returns pending alerts due at now, oldest first.
func (s *Store) DueAlerts(ctx context.Context, now time.Time, limit int) ([]Alert, error) {
	return s.queryAlerts(ctx, `WHERE state = 'pending' AND next_at <= ? ORDER BY id LIMIT ?`, ts(now), limit)
}

// NextAlertDue returns when the next pending alert is due (zero: none).
func (s *Store) NextAlertDue(ctx context.Context) (time.Time, error) {
	var next sql.NullString
	err := s.queryRow(ctx, `SELECT MIN(next_at) FROM alerts WHERE state = 'pending'`).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return parseTS(next.String), nil
}

// Alerts returns the newest alerts first (the UI's delivery view).
func (s *Store) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	return s.queryAlerts(ctx, `ORDER BY id DESC LIMIT ?`, limit)
}

// CountAlerts returns how many alerts are in each state.
func (s *Store) CountAlerts(ctx context.Context) (map[string]int, error) {
	return s.countBy(ctx, `SELECT state, COUNT(*) FROM alerts GROUP BY state`)
}

// countBy runs a "SELECT key, COUNT(*) ... GROUP BY key" query.
func (s *Store) countBy(ctx context.Context, q string) (map[string]int, error) {
	rows, err := s.query(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var key string
		var n int
		if err := rows.Scan(&key, &n); err != nil {
			return nil, err
		}
		out[key] = n
	}
	return out, rows.Err()
}

// SetAlertState records the outcome of a delivery attempt for some alerts
// (compare-and-swap from pending, so two senders never both record one):
// sent, skipped or failed with the error, or pending again at next.
func (s *Store) SetAlertState(ctx context.Context, ids []int64, state string, at, next time.Time, lastError string) error {
	return s.InTx(ctx, func(tx *Store) error {
		for _, id := range ids {
			var sent any
			if state == AlertSent {
				sent = ts(at)
			}
			if _, err := tx.exec(ctx, `UPDATE alerts SET state = ?, attempts = attempts + ?, next_at = ?, last_error = ?, sent_at = ?
				WHERE id = ? AND state = 'pending'`, state, boolInt(state != AlertSkipped), ts(next), lastError, sent, id); err != nil {
				return err
			}
		}
		return nil
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// AlertFilter selects alerts for the alerts page; zero fields do not filter.
type AlertFilter struct {
	State, Kind, DagID string
	Limit, Offset      int
}

// FindAlerts returns the alerts f selects, newest first, with how many it
// selects in all.
func (s *Store) FindAlerts(ctx context.Context, f AlertFilter) ([]Alert, int, error) {
	w := &where{}
	for col, v := range map[string]string{"state": f.State, "kind": f.Kind, "dag_id": f.DagID} {
		if v != "" {
			w.add(col+` = ?`, v)
		}
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM alerts`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := s.queryAlerts(ctx, strings.TrimPrefix(w.String(), " ")+` ORDER BY id DESC`+limitOffset(f.Limit, f.Offset), w.args...)
	return out, total, err
}
