package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"updraft/dags"
	"updraft/store"
	"updraft/store/trylog"
)

// TIView is a task instance with what both APIs show of it: its run, its
// task as loaded now (nil when gone), and its latest try's details.
type TIView struct {
	TI       store.TaskInstance
	Run      store.Run
	Task     *dags.Task
	Last     *store.Try
	Rendered map[string]any // the latest try's rendered fields, masked
	PID      *int           // the local executor's process id
}

// State is the task instance's state as Airflow names it ("none" when it
// has none yet).
func (v TIView) State() string {
	if v.TI.State == "" {
		return "none"
	}
	return string(v.TI.State)
}

// Queue is the task's queue ("default" when the task is gone).
func (v TIView) Queue() string {
	if v.Task != nil && v.Task.Queue != "" {
		return v.Task.Queue
	}
	return "default"
}

// View completes a task instance for display; withTry reads its tries.
func (s *Service) View(ctx context.Context, ti store.TaskInstance, run store.Run, withTry bool) TIView {
	v := TIView{TI: ti, Run: run, Rendered: map[string]any{}}
	if d, err := s.CurrentDAG(ti.DagID); err == nil {
		v.Task = d.Task(ti.TaskID)
	}
	if !withTry {
		return v
	}
	if tries, err := s.Store.Tries(ctx, ti.Key()); err == nil && len(tries) > 0 {
		v.Last = &tries[len(tries)-1]
		v.fromTry(s, *v.Last)
	}
	return v
}

func (v *TIView) fromTry(s *Service, t store.Try) {
	if t.Rendered != "" {
		var rendered map[string]any
		if json.Unmarshal([]byte(t.Rendered), &rendered) == nil && rendered != nil {
			v.Rendered = s.MaskValue(rendered)
		}
	}
	if pid, err := strconv.Atoi(strings.TrimPrefix(t.Handle, "pid:")); err == nil && t.Executor == "local" {
		v.PID = &pid
	}
}

// TaskInstance returns one task instance with its latest try.
func (s *Service) TaskInstance(ctx context.Context, k store.TIKey) (TIView, error) {
	ti, err := s.Store.TaskInstance(ctx, k)
	if err != nil {
		return TIView{}, err
	}
	run, err := s.Store.Run(ctx, k.DagID, k.RunID)
	if err != nil {
		return TIView{}, err
	}
	return s.View(ctx, ti, run, true), nil
}

// TaskInstances returns one page of the task instances a filter selects,
// and how many it selects in all.
func (s *Service) TaskInstances(ctx context.Context, f store.TIFilter, p Page) ([]TIView, int, error) {
	f.Limit, f.Offset = p.Limit, p.Offset
	tis, total, err := s.Store.FindTaskInstances(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	views, err := s.Views(ctx, tis)
	return views, total, err
}

// Views completes task instances with their runs (one read per run).
func (s *Service) Views(ctx context.Context, tis []store.TaskInstance) ([]TIView, error) {
	runs := map[string]store.Run{}
	out := make([]TIView, 0, len(tis))
	for _, ti := range tis {
		key := ti.DagID + "\x00" + ti.RunID
		run, ok := runs[key]
		if !ok {
			var err error
			if run, err = s.Store.Run(ctx, ti.DagID, ti.RunID); err != nil {
				return nil, err
			}
			runs[key] = run
		}
		out = append(out, s.View(ctx, ti, run, false))
	}
	return out, nil
}

// Try returns one try of a task instance.
func (s *Service) Try(ctx context.Context, k store.TIKey, try int) (store.Try, error) {
	tries, err := s.Store.Tries(ctx, k)
	if err != nil {
		return store.Try{}, err
	}
	for _, t := range tries {
		if t.TryNumber == try {
			return t, nil
		}
	}
	return store.Try{}, fmt.Errorf("task instance %s has no try %d: %w", k, try, store.ErrNotFound)
}

// LogChunk bounds one log read that is not a full one; a client follows
// with the continuation token.
const LogChunk = 1 << 20

// ReadLog returns a try's log from offset (all of it when full) and the
// offset to continue from, with secrets masked. The end of a chunk that
// may hold the start of a secret is kept for the next read, so masking
// never sees half a secret.
func (s *Service) ReadLog(ctx context.Context, k store.TIKey, try int, offset int64, full bool) (string, int64, error) {
	t, err := s.Try(ctx, k, try)
	if err != nil {
		return "", 0, err
	}
	l, err := trylog.Open(ctx, s.Store, t)
	if err != nil {
		return "", 0, err
	}
	defer l.Close()
	size := l.Size
	if offset > size {
		offset = size
	}
	end := size
	if !full && end-offset > LogChunk {
		end = offset + LogChunk
	}
	secrets, err := s.Store.SecretValues(ctx)
	if err != nil {
		return "", 0, fmt.Errorf("read secret values to mask: %w", err)
	}
	if end < size && !full {
		hold := int64(longest(secrets))
		if end-hold > offset {
			end -= hold
		}
	}
	buf, err := l.Read(ctx, offset, end-offset)
	if err != nil {
		return "", 0, err
	}
	end = offset + int64(len(buf))
	return s.MaskText(string(buf), secrets), end, nil
}

func longest(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}

// LogToken is the continuation token of a log read ending at offset.
func LogToken(offset int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.FormatInt(offset, 10)))
}

// ParseLogToken reads a continuation token.
func ParseLogToken(tok string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if v, ok := strings.CutPrefix(string(b), "offset:"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				return n, nil
			}
		}
	}
	return 0, Invalid("token is not a continuation token of this server")
}

// XComEntry is one XCom as the APIs and the pages show it.
type XComEntry struct {
	store.XCom
	Text   string // the value as shown: masked, a string as it is
	Native any    // the value decoded (deserialize=true), masked
}

// XComText is an XCom value as text: a string as it is, anything else as
// its JSON, with secrets masked.
func (s *Service) XComText(v json.RawMessage, secrets []string) string {
	var str string
	text := string(v)
	if json.Unmarshal(v, &str) == nil {
		text = str
	}
	return s.MaskText(text, secrets)
}

// XComs returns the XComs a filter selects, their values as text.
// xcomNative is an XCom's value decoded, masked; a value whose masking
// broke its JSON is its masked text.
func (s *Service) xcomNative(v json.RawMessage, secrets []string) any {
	var out any
	if json.Unmarshal([]byte(s.MaskText(string(v), secrets)), &out) != nil {
		return s.XComText(v, secrets)
	}
	return out
}

func (s *Service) XComs(ctx context.Context, f store.XComFilter) ([]XComEntry, error) {
	xs, err := s.Store.XComs(ctx, f)
	if err != nil {
		return nil, err
	}
	secrets, err := s.Store.SecretValues(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]XComEntry, len(xs))
	for i, x := range xs {
		out[i] = XComEntry{XCom: x, Text: s.XComText(x.Value, secrets), Native: s.xcomNative(x.Value, secrets)}
	}
	return out, nil
}
