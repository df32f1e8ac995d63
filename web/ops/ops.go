// Package ops is what the web server does, written once: the operations on
// DAGs, runs, task instances, logs, XComs, variables and pools that the
// pages, /api/v1 and /api/v2 translate to and from. It knows no dialect:
// no field names of either API, no HTML. Every rule about runs and tries
// that a caller of the web server can reach lives here or in the
// scheduler behind Commands.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
)

// Bag is what the web server needs to know about DAGs: the latest load of
// the DAG folder and when it happened. Implementations must be safe for
// concurrent use.
type Bag interface {
	Current() (*dags.Result, time.Time)
}

// Commands are the scheduler's commands: every manual change to runs and
// task instances goes through them, so the scheduler sees it at once and
// audits it. Implementations must be safe for concurrent use.
type Commands interface {
	Trigger(ctx context.Context, dagID string, o scheduler.TriggerOptions) (store.Run, error)
	SetPaused(ctx context.Context, dagID string, paused bool, actor string) error
	Clear(ctx context.Context, dagID, runID string, taskIDs []string, o scheduler.ClearOptions) ([]store.TaskInstance, error)
	MarkTasks(ctx context.Context, dagID, runID string, taskIDs []string, state dags.TaskState, o scheduler.MarkOptions) ([]store.TaskInstance, error)
	SetRunState(ctx context.Context, dagID, runID string, state dags.RunState, actor string) (store.Run, error)
	Backfill(ctx context.Context, o scheduler.BackfillOptions) (store.Backfill, []store.BackfillDate, error)
	ChangeBackfill(ctx context.Context, id int64, action, actor string) (store.Backfill, error)
}

// Service runs the operations. It is safe for concurrent use.
type Service struct {
	Store    *store.Store
	Bag      Bag
	Commands Commands
	// Mask is the server's masker (nil: only the store's secret values
	// are masked, when read).
	Mask *dags.Masker
	Now  func() time.Time
	Log  *slog.Logger
}

// ErrInvalid marks a request refused for its content (HTTP 400 in v1, 422
// or 400 in v2).
var ErrInvalid = errors.New("invalid request")

// Invalid is an ErrInvalid with a message.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalid)
}

// ErrNotFound is the store's: what a request names does not exist.
var ErrNotFound = store.ErrNotFound

// Teach tells the server's masker about secret values set or used here.
func (s *Service) Teach(values ...string) {
	if s.Mask != nil {
		s.Mask.Add(values...)
	}
}

// MaskText masks the secrets in text: the store's secret values, and
// every value the server's masker has learnt (rotated ones included).
func (s *Service) MaskText(text string, secrets []string) string {
	text = dags.Mask(text, secrets)
	if s.Mask != nil {
		text = s.Mask.Mask(text)
	}
	return text
}

// MaskValue masks secrets in every string of a decoded JSON value; when
// the secrets cannot be read, the value is withheld.
func (s *Service) MaskValue(v map[string]any) map[string]any {
	secrets, err := s.Store.SecretValues(context.Background())
	if err != nil {
		s.Log.Error("read secret values to mask", "err", err)
		return map[string]any{}
	}
	if len(secrets) == 0 && s.Mask == nil {
		return v
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case string:
			return s.MaskText(t, secrets)
		case map[string]any:
			out := make(map[string]any, len(t))
			for k, e := range t {
				out[k] = walk(e)
			}
			return out
		case []any:
			out := make([]any, len(t))
			for i, e := range t {
				out[i] = walk(e)
			}
			return out
		}
		return x
	}
	return walk(v).(map[string]any)
}

// Audit records an action the web server does itself (the scheduler
// audits its own commands). A failed write is logged, not returned: the
// action has happened.
func (s *Service) Audit(ctx context.Context, actor, action, dagID, runID, taskID, detail string) {
	if err := s.Store.Audit(ctx, store.AuditEntry{At: s.Now(), Actor: actor, Action: action, DagID: dagID, RunID: runID, TaskID: taskID, Detail: detail}); err != nil {
		s.Log.Error("audit log write failed", "action", action, "err", err)
	}
}

// CheckYear refuses dates before 1970 or after 9999: no schedule has
// them, and they overflow the stores' and clients' time types.
func CheckYear(name string, t *time.Time) error {
	if t == nil {
		return nil
	}
	if y := t.UTC().Year(); y < 1970 || y > 9999 {
		return Invalid("%s: %s is out of range (1970 to 9999)", name, t.Format(time.RFC3339))
	}
	return nil
}

// Connections are the Airflow connections the server's operators use.
// They come from the environment or a mounted Secret folder, so the UI and
// the APIs only show and test them: Op and Admin see their type, host,
// login, schema, port and where they were found, never a password or an
// extra (extras may hold keys).
type Connections interface {
	List() ([]ConnectionInfo, error)
	// Test tries a connection without changing anything and says what it
	// found; an unknown id is store.ErrNotFound.
	Test(ctx context.Context, id string) (string, error)
}

// ConnectionInfo is what may be shown of a connection.
type ConnectionInfo struct {
	ID, Type, Host, Login, Schema string
	Port                          int
	Masked                        string // the URI with the password replaced
	Source                        string // "env UPDRAFT_CONN_X" or the file it was read from
}
