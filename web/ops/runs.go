package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
)

// Runs returns one page of the runs a filter selects, and how many it
// selects in all.
func (s *Service) Runs(ctx context.Context, f store.RunFilter, p Page) ([]store.Run, int, error) {
	f.Limit, f.Offset = p.Limit, p.Offset
	runs, err := s.Store.Runs(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	total, err := s.Store.CountRuns(ctx, f)
	return runs, total, err
}

// DecodeConf reads a run's conf: a JSON object, numbers kept exact; null
// or nothing is no conf.
func DecodeConf(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			line, col := position(raw, syn.Offset)
			return nil, Invalid("conf is not valid JSON: %s (line %d, column %d)", strings.TrimPrefix(syn.Error(), "invalid character "), line, col)
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, Invalid("conf is not valid JSON: it ends too early (a missing } or \")")
		}
		return nil, Invalid("conf is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, Invalid("conf is not valid JSON: something follows the object")
	}
	m, ok := dags.JSONNumbers(v).(map[string]any)
	if !ok {
		return nil, Invalid("conf must be a JSON object")
	}
	return m, nil
}

// position is the line and column (from 1) of a byte offset in text.
func position(text []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i, c := range text {
		if int64(i) >= offset-1 {
			break
		}
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// Trigger creates a manual run.
func (s *Service) Trigger(ctx context.Context, dagID string, o scheduler.TriggerOptions) (store.Run, error) {
	if err := CheckYear("logical_date", o.LogicalDate); err != nil {
		return store.Run{}, err
	}
	return s.Commands.Trigger(ctx, dagID, o)
}

// DeleteRun deletes a run that is not queued or running, with its task
// instances, tries, logs and XComs.
func (s *Service) DeleteRun(ctx context.Context, dagID, runID, actor string) error {
	paths, err := s.Store.DeleteRun(ctx, dagID, runID)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.Log.Warn("delete a try log", "path", p, "err", err)
		}
	}
	s.Audit(ctx, actor, "dag_run_delete", dagID, runID, "", "")
	return nil
}

// ClearRun clears every task instance of a run (dry: lists them). With
// onlyFailed only the failed and upstream_failed ones.
func (s *Service) ClearRun(ctx context.Context, dagID, runID string, dry, onlyFailed bool, actor string) ([]store.TaskInstance, store.Run, error) {
	run, err := s.Store.Run(ctx, dagID, runID)
	if err != nil {
		return nil, run, err
	}
	tis, err := s.Store.TaskInstances(ctx, dagID, runID)
	if err != nil {
		return nil, run, err
	}
	ids := make([]string, len(tis))
	for i, ti := range tis {
		ids[i] = ti.TaskID
	}
	cleared, err := s.Commands.Clear(ctx, dagID, runID, ids, scheduler.ClearOptions{DryRun: dry, OnlyFailed: onlyFailed, Actor: actor})
	if err != nil {
		return nil, run, err
	}
	if !dry {
		run, err = s.Store.Run(ctx, dagID, runID)
	}
	return cleared, run, err
}

// RunsFor selects the runs a clear or a mark over several runs works on:
// one run (with the runs before and after it on request), or a logical
// date range.
func (s *Service) RunsFor(ctx context.Context, dagID, runID string, from, to *time.Time, past, future bool) ([]store.Run, error) {
	if runID != "" {
		run, err := s.Store.Run(ctx, dagID, runID)
		if err != nil {
			return nil, err
		}
		f := store.RunFilter{DagID: dagID}
		if !past {
			f.LogicalGTE = &run.LogicalDate
		}
		if !future {
			f.LogicalLTE = &run.LogicalDate
		}
		return s.Store.Runs(ctx, f)
	}
	if _, err := s.DAGView(ctx, dagID); err != nil {
		return nil, err
	}
	return s.Store.Runs(ctx, store.RunFilter{DagID: dagID, LogicalGTE: from, LogicalLTE: to})
}

// PresentTasks keeps the task ids a run has task instances for: a task
// added to the DAG later is not in older runs.
func (s *Service) PresentTasks(ctx context.Context, run store.Run, ids []string) []string {
	tis, err := s.Store.TaskInstances(ctx, run.DagID, run.RunID)
	if err != nil {
		return ids
	}
	have := map[string]bool{}
	for _, ti := range tis {
		have[ti.TaskID] = true
	}
	var out []string
	for _, id := range ids {
		if have[id] {
			out = append(out, id)
		}
	}
	return out
}

// ClearRequest is a clear over one DAG's runs: Airflow's
// clearTaskInstances.
type ClearRequest struct {
	DagID      string
	RunID      string     // one run, or
	From, To   *time.Time // a logical date range
	Past       bool       // with RunID: the runs before it too
	Future     bool       // with RunID: the runs after it too
	TaskIDs    []string   // none: every task
	MapIndexes []int      // only these instances of mapped tasks
	Options    scheduler.ClearOptions
}

// Cleared is a task instance a clear or a mark touched, with its run.
type Cleared struct {
	TI  store.TaskInstance
	Run store.Run
}

// Clear clears task instances across runs (dry: lists them).
func (s *Service) Clear(ctx context.Context, req ClearRequest) ([]Cleared, error) {
	if err := CheckYear("start_date", req.From); err != nil {
		return nil, err
	}
	if err := CheckYear("end_date", req.To); err != nil {
		return nil, err
	}
	runs, err := s.RunsFor(ctx, req.DagID, req.RunID, req.From, req.To, req.Past, req.Future)
	if err != nil {
		return nil, err
	}
	req.Options.MapIndexes = req.MapIndexes
	out := []Cleared{}
	for _, run := range runs {
		ids := req.TaskIDs
		if len(ids) == 0 {
			tis, err := s.Store.TaskInstances(ctx, req.DagID, run.RunID)
			if err != nil {
				return nil, err
			}
			for _, ti := range tis {
				ids = append(ids, ti.TaskID)
			}
		}
		if ids = s.PresentTasks(ctx, run, ids); len(ids) == 0 {
			continue
		}
		cleared, err := s.Commands.Clear(ctx, req.DagID, run.RunID, ids, req.Options)
		if err != nil {
			return nil, err
		}
		for _, ti := range cleared {
			out = append(out, Cleared{ti, run})
		}
	}
	return out, nil
}

// MarkRequest marks one task across runs: Airflow's
// updateTaskInstancesState and a task instance's PATCH.
type MarkRequest struct {
	DagID, RunID, TaskID string
	Past, Future         bool
	State                dags.TaskState
	Options              scheduler.MarkOptions
}

// CheckNewState accepts the states a caller may set on a task instance.
func CheckNewState(st dags.TaskState) error {
	switch st {
	case dags.StateSuccess, dags.StateFailed, dags.StateSkipped:
		return nil
	}
	return Invalid("new_state must be success, failed or skipped, not %q", st)
}

// Mark marks a task (and its relatives, on request) across runs.
func (s *Service) Mark(ctx context.Context, req MarkRequest) ([]Cleared, error) {
	if err := CheckNewState(req.State); err != nil {
		return nil, err
	}
	runs, err := s.RunsFor(ctx, req.DagID, req.RunID, nil, nil, req.Past, req.Future)
	if err != nil {
		return nil, err
	}
	out := []Cleared{}
	for _, run := range runs {
		if len(s.PresentTasks(ctx, run, []string{req.TaskID})) == 0 {
			continue
		}
		marked, err := s.Commands.MarkTasks(ctx, req.DagID, run.RunID, []string{req.TaskID}, req.State, req.Options)
		if err != nil {
			return nil, err
		}
		for _, ti := range marked {
			out = append(out, Cleared{ti, run})
		}
	}
	return out, nil
}

// RunAt is the DAG's run at a logical date.
func (s *Service) RunAt(ctx context.Context, dagID string, at time.Time) (store.Run, error) {
	runs, err := s.Store.Runs(ctx, store.RunFilter{DagID: dagID, LogicalGTE: &at, LogicalLTE: &at})
	if err != nil {
		return store.Run{}, err
	}
	if len(runs) == 0 {
		return store.Run{}, fmt.Errorf("dag %q has no run at %s: %w", dagID, at.UTC().Format(time.RFC3339), store.ErrNotFound)
	}
	return runs[0], nil
}

// SetRunNote replaces a run's note.
func (s *Service) SetRunNote(ctx context.Context, dagID, runID, note, actor string) error {
	if err := s.Store.SetRunNote(ctx, dagID, runID, note); err != nil {
		return err
	}
	s.Audit(ctx, actor, "dag_run_note", dagID, runID, "", "")
	return nil
}
