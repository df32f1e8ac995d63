// Package builtin runs the operators that need no process or pod: an HTTP
// request (HttpOperator), a Mattermost post (MattermostOperator) and SQL on
// Snowflake or PostgreSQL (SQLExecuteQueryOperator), inside the server,
// bounded by their own slots. Router puts them beside the main
// executor (local or Kubernetes), which runs everything else. Connections
// are Airflow's, from the environment or a mounted folder.
package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// Options configure the in-process executor.
type Options struct {
	Connections Connections
	Slots       int          // tries at once (default 8)
	Client      *http.Client // default: no timeout of its own (execution_timeout bounds a try)
	// Secrets returns values to mask in logs (secret variables).
	Secrets func(context.Context) ([]string, error)
	// External reads other DAGs' runs for external-task sensors.
	External ExternalLookup
	// Runs starts runs of other DAGs (TriggerDagRunOperator).
	Runs Runs
	Log  *slog.Logger
}

// Executor runs in-process tries. In-process work does not survive a
// restart: Adopt reports ErrGone, so the scheduler fails the try and
// retries it if it may.
type Executor struct {
	o      Options
	events chan executor.Event
	mu     sync.Mutex
	tries  map[executor.TryKey]*inTry
}

type inTry struct {
	cancel context.CancelCauseFunc
	sensor bool // sensors wait without taking a slot
}

// New returns the in-process executor.
func New(o Options) *Executor {
	if o.Slots <= 0 {
		o.Slots = 8
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Secrets == nil {
		o.Secrets = func(context.Context) ([]string, error) { return nil, nil }
	}
	return &Executor{o: o, events: make(chan executor.Event, 1024), tries: map[executor.TryKey]*inTry{}}
}

// Handles reports whether a spec runs here.
func Handles(spec dags.OperatorSpec) bool {
	_, ok := spec.(dags.InProcess)
	return ok
}

func (e *Executor) Events() <-chan executor.Event { return e.events }

func (e *Executor) Free() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Slots - e.busy()
}

// busy counts the tries that hold a slot. e.mu is held.
func (e *Executor) busy() int {
	n := 0
	for _, t := range e.tries {
		if !t.sensor {
			n++
		}
	}
	return n
}

// IsSensor reports whether a spec is a sensor: it waits in the server
// without taking one of the executor's slots (Airflow's reschedule mode
// frees its worker the same way).
func IsSensor(spec dags.OperatorSpec) bool {
	_, ok := spec.(dags.Sensor)
	return ok
}

// Start runs a try in a goroutine.
func (e *Executor) Start(ctx context.Context, t executor.Try) error {
	if !Handles(t.Spec) {
		return fmt.Errorf("try %s: %s does not run in-process", t.Key, t.Spec.Kind())
	}
	sensor := IsSensor(t.Spec)
	e.mu.Lock()
	if !sensor && e.busy() >= e.o.Slots {
		e.mu.Unlock()
		return executor.ErrFull
	}
	if _, dup := e.tries[t.Key]; dup {
		e.mu.Unlock()
		return fmt.Errorf("try %s is already running", t.Key)
	}
	runCtx, cancel := context.WithCancelCause(context.Background())
	if t.Timeout > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(runCtx, t.Timeout, fmt.Errorf("execution_timeout of %v exceeded", t.Timeout))
		inner := cancel
		cancel = func(err error) { inner(err); stop() }
	}
	e.tries[t.Key] = &inTry{cancel: cancel, sensor: sensor}
	e.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(t.LogPath), executor.LogDirMode); err != nil {
		e.forget(t.Key)
		return fmt.Errorf("try %s: log folder: %w", t.Key, err)
	}
	e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "in-process", At: time.Now()})
	go e.run(runCtx, t)
	return nil
}

func (e *Executor) forget(k executor.TryKey) {
	e.mu.Lock()
	if it := e.tries[k]; it != nil {
		it.cancel(nil)
	}
	delete(e.tries, k)
	e.mu.Unlock()
}

func (e *Executor) send(ev executor.Event) { e.events <- ev }

// Kill cancels a running try; its final event says why.
func (e *Executor) Kill(_ context.Context, k executor.TryKey, reason string) error {
	e.mu.Lock()
	it := e.tries[k]
	e.mu.Unlock()
	if it != nil {
		it.cancel(errors.New(reason))
	}
	return nil
}

// Adopt cannot re-attach to in-process work of an earlier process.
func (e *Executor) Adopt(context.Context, executor.Try) error { return executor.ErrGone }

// run does the work and reports the outcome.
func (e *Executor) run(ctx context.Context, t executor.Try) {
	logf, err := executor.OpenLog(t, false)
	var log io.Writer = io.Discard
	if err == nil {
		defer logf.Close()
		log = logf
	}
	secrets, serr := e.o.Secrets(ctx)
	logLine := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if serr == nil {
			line = dags.Mask(line, secrets)
		} else if strings.Contains(format, "%s\n") && len(args) > 0 {
			line = "(withheld: secret values could not be read to mask them)"
		}
		fmt.Fprintf(log, "[%s] %s\n", time.Now().UTC().Format(time.RFC3339), strings.TrimRight(line, "\n"))
	}
	logLine("updraft: try %d of %s (run %s) running in-process (%s)", t.Key.TryNumber, t.Key.Task(), t.Key.RunID, t.Spec.Kind())
	out := &result{}
	switch s := t.Spec.(type) {
	case dags.HttpSpec:
		err = e.runHTTP(ctx, s, logLine, out)
	case dags.MattermostSpec:
		err = e.runMattermost(ctx, s, logLine)
	case dags.SQLSpec:
		err = e.runSQL(ctx, s, logLine, out)
	case dags.BranchSQLSpec:
		err = e.runBranchSQL(ctx, s, logLine, out)
	case dags.Decider:
		err = decide(s, logLine, out)
	case dags.Sensor:
		err = e.runSensor(ctx, s, logLine)
	case dags.TriggerDagRunSpec:
		err = e.runTrigger(ctx, s, t, logLine, out)
	default:
		err = fmt.Errorf("%s does not run in-process", t.Spec.Kind())
	}
	ev := executor.Event{Key: t.Key, State: executor.Succeeded, At: time.Now(), Branch: out.branch}
	if err == nil {
		ev.XCom = out.xcom(t.XComPush)
		err = out.err
	}
	switch {
	case errors.Is(err, errSkip):
		ev.State = executor.Skipped
		logLine("updraft: skipped")
	case err != nil:
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		ev.State, ev.Reason = executor.Failed, err.Error()
		ev.Final = errors.Is(err, errSensorTimeout) // as in Airflow, a sensor's timeout is not retried
		logLine("updraft: failed: %s", err)
	default:
		logLine("updraft: done")
	}
	e.forget(t.Key)
	e.send(ev)
}

// result is what an in-process try hands on: its XCom and its branch.
type result struct {
	value    any // the return value (pushed when the task pushes XCom)
	hasValue bool
	explicit map[string]any // pushed whatever do_xcom_push says (TriggerDagRunOperator's keys)
	branch   *dags.Branch
	err      error
}

func (r *result) returns(v any) { r.value, r.hasValue = v, true }

func (r *result) push(key string, v any) {
	if r.explicit == nil {
		r.explicit = map[string]any{}
	}
	r.explicit[key] = v
}

// xcom encodes the try's XCom: the explicit keys, and the return value
// when the task pushes one.
func (r *result) xcom(push bool) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	enc := func(key string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			r.err = fmt.Errorf("XCom %s cannot be stored as JSON: %v", key, err)
			return
		}
		out[key] = b
	}
	for k, v := range r.explicit {
		enc(k, v)
	}
	if push && r.hasValue {
		enc(dags.ReturnValueKey, r.value)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// decide reports a branch operator's decision, made when it rendered.
func decide(s dags.Decider, logLine func(string, ...any), out *result) error {
	b, v, err := s.Decide()
	if err != nil {
		return err
	}
	if why, ok := s.(interface{ Reason() string }); ok && why.Reason() != "" {
		logLine("updraft: %s", why.Reason())
	}
	switch {
	case b == nil:
		logLine("updraft: downstream tasks go on")
	case b.All:
		logLine("updraft: every task downstream is skipped")
	case len(b.Follow) == 0:
		logLine("updraft: the direct downstream tasks are skipped")
	default:
		logLine("updraft: following %s; the other direct downstream tasks are skipped", strings.Join(b.Follow, ", "))
	}
	out.branch = b
	if v != nil {
		out.returns(v)
	}
	return nil
}

// runHTTP makes the request of an HttpOperator; its result is the
// response text, or response_filter rendered with the response.
func (e *Executor) runHTTP(ctx context.Context, s dags.HttpSpec, logLine func(string, ...any), out *result) error {
	status, body, headers, err := e.request(ctx, s, logLine)
	if err != nil {
		return err
	}
	if err := s.CheckResponse(status, body); err != nil {
		return err
	}
	v, err := s.Filter(status, body, headers)
	if err != nil {
		return err
	}
	out.returns(v)
	return nil
}

// request makes an HTTP request of a task and returns the status, up to
// 1 MiB of the body and the response headers.
func (e *Executor) request(ctx context.Context, s dags.HttpSpec, logLine func(string, ...any)) (int, []byte, map[string]string, error) {
	conn, err := e.o.Connections.Get(s.ConnID)
	if err != nil {
		return 0, nil, nil, err
	}
	target := conn.BaseURL()
	if s.Endpoint != "" {
		target += "/" + strings.TrimLeft(s.Endpoint, "/")
	}
	u, err := url.Parse(target)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("connection %s with endpoint %q is not a URL", s.ConnID, s.Endpoint)
	}
	var body io.Reader
	headers := map[string]string{}
	for k, v := range conn.Extra { // Airflow sends an HTTP connection's extra as headers
		headers[k] = v
	}
	for k, v := range s.Headers {
		headers[k] = v
	}
	switch {
	case s.Form != nil && s.Method == http.MethodGet:
		q := u.Query()
		for k, v := range s.Form {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	case s.Form != nil:
		form := url.Values{}
		for k, v := range s.Form {
			form.Set(k, v)
		}
		body = strings.NewReader(form.Encode())
		if headerOf(headers, "Content-Type") == "" {
			headers["Content-Type"] = "application/x-www-form-urlencoded"
		}
	case s.Body != "":
		body = strings.NewReader(s.Body)
	}
	req, err := http.NewRequestWithContext(ctx, s.Method, u.String(), body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("request: %v", err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if conn.Login != "" {
		req.SetBasicAuth(conn.Login, conn.Password)
	}
	logLine("updraft: %s %s (connection %s)", s.Method, redact(u), s.ConnID)
	start := time.Now()
	resp, err := e.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, nil, fmt.Errorf("%s %s: %w", s.Method, redact(u), err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	logLine("updraft: HTTP %d in %s, %d bytes", resp.StatusCode, time.Since(start).Round(time.Millisecond), len(respBody))
	if s.LogResponse {
		logLine("%s\n", truncate(string(respBody), 64<<10))
	}
	hdr := make(map[string]string, len(resp.Header))
	for k := range resp.Header {
		hdr[k] = resp.Header.Get(k)
	}
	return resp.StatusCode, respBody, hdr, nil
}

// runMattermost posts a MattermostOperator's message to the webhook of
// its connection: <host>/hooks/<password>, as the reference workload's
// hook does.
func (e *Executor) runMattermost(ctx context.Context, s dags.MattermostSpec, logLine func(string, ...any)) error {
	conn, err := e.o.Connections.Get(s.ConnID)
	if err != nil {
		return err
	}
	target := conn.BaseURL()
	if conn.Password != "" {
		target += "/hooks/" + url.PathEscape(conn.Password)
	}
	payload := map[string]any{}
	if len(s.Props) > 0 {
		payload["props"] = s.Props
	}
	for k, v := range map[string]string{"text": s.Text, "channel": s.Channel, "username": s.Username, "icon_url": s.IconURL, "icon_emoji": s.IconEmoji, "type": s.Type} {
		if v != "" {
			payload[k] = v
		}
	}
	if len(s.Attachments) > 0 {
		payload["attachments"] = s.Attachments
	}
	b, _ := json.Marshal(payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return errors.New("the connection's webhook URL is not valid")
	}
	req.Header.Set("Content-Type", "application/json")
	where := conn.BaseURL()
	if s.Channel != "" {
		where += " channel " + s.Channel
	}
	logLine("updraft: posting to the Mattermost webhook at %s (connection %s)", where, s.ConnID)
	resp, err := e.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post to %s: %w", conn.BaseURL(), err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %d: %s", resp.StatusCode, strings.TrimSpace(string(reply)))
	}
	logLine("updraft: posted (HTTP %d)", resp.StatusCode)
	return nil
}

func headerOf(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// redact is a URL for the log: no user info.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n(truncated)"
}

// Router runs in-process specs here and everything else on the main
// executor, and merges their events. Run must be running for events to
// flow.
type Router struct {
	Main   executor.Executor
	InProc *Executor
	events chan executor.Event
}

// NewRouter puts the in-process executor beside the main one.
func NewRouter(main executor.Executor, inProc *Executor) *Router {
	return &Router{Main: main, InProc: inProc, events: make(chan executor.Event, 1024)}
}

// Run forwards both executors' events until ctx ends.
func (r *Router) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-r.Main.Events():
			r.forward(ctx, ev)
		case ev := <-r.InProc.Events():
			r.forward(ctx, ev)
		}
	}
}

func (r *Router) forward(ctx context.Context, ev executor.Event) {
	select {
	case r.events <- ev:
	case <-ctx.Done():
	}
}

func (r *Router) Events() <-chan executor.Event { return r.events }

func (r *Router) Free() int { return r.Main.Free() + r.InProc.Free() }

// SlotClass says which executor's slots a task takes: sensors take none.
func (r *Router) SlotClass(spec dags.OperatorSpec) string {
	switch {
	case IsSensor(spec):
		return "sensor"
	case Handles(spec):
		return "inprocess"
	}
	return "main"
}

// sensorSlots bounds what one step hands out to sensors, which hold no
// slot: pools, max_active_tasks and parallelism limit them.
const sensorSlots = 1 << 16

// FreeSlots returns the free slots of one of the executors.
func (r *Router) FreeSlots(class string) int {
	switch class {
	case "sensor":
		return sensorSlots
	case "inprocess":
		return r.InProc.Free()
	}
	return r.Main.Free()
}

func (r *Router) Start(ctx context.Context, t executor.Try) error {
	if Handles(t.Spec) {
		return r.InProc.Start(ctx, t)
	}
	return r.Main.Start(ctx, t)
}

func (r *Router) Kill(ctx context.Context, k executor.TryKey, reason string) error {
	r.InProc.mu.Lock()
	_, here := r.InProc.tries[k]
	r.InProc.mu.Unlock()
	if here {
		return r.InProc.Kill(ctx, k, reason)
	}
	return r.Main.Kill(ctx, k, reason)
}

// ReplaysLog says whether adopting t writes its log again from its start.
func (r *Router) ReplaysLog(t executor.Try) bool {
	if lr, ok := r.Main.(executor.LogReplayer); ok && !Handles(t.Spec) {
		return lr.ReplaysLog(t)
	}
	return false
}

// Sweep cleans up after the main executor (pods no live try needs); the
// in-process executor leaves nothing behind.
func (r *Router) Sweep(ctx context.Context, live func(executor.TryKey) bool) (int, error) {
	if sw, ok := r.Main.(executor.Sweeper); ok {
		return sw.Sweep(ctx, live)
	}
	return 0, nil
}

func (r *Router) Adopt(ctx context.Context, t executor.Try) error {
	if Handles(t.Spec) {
		return r.InProc.Adopt(ctx, t)
	}
	return r.Main.Adopt(ctx, t)
}
