package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/builtin"
	kubeexec "updraft/executor/kubernetes"
	"updraft/executor/local"
	"updraft/executor/python"
	"updraft/store"
	"updraft/web"
)

// pythonKeyName names the server key per-try credentials are signed with.
const pythonKeyName = "python-try-credentials"

// pythonTries is what Python callables need from a server (or "dags
// test"): credentials signed with the database's key, the runner written
// to disk, and the Execution API they call.
type pythonTries struct {
	creds   *python.Credentials
	runtime string // the runner's folder
	dagsDir func(revision string) (string, error)
	api     http.Handler
}

// newPythonTries prepares Python tries. stateDir is a private folder of
// the server's (the runner is written below it); dagsDir resolves a run's
// revision to its DAG folder.
func newPythonTries(ctx context.Context, st *store.Store, stateDir string, dagsDir func(string) (string, error),
	conns builtin.Connections, masker *dags.Masker, logger *slog.Logger) (*pythonTries, error) {
	key, err := st.ServerKey(ctx, pythonKeyName)
	if err != nil {
		return nil, fmt.Errorf("python credentials key: %w", err)
	}
	creds, err := python.NewCredentials(key)
	if err != nil {
		return nil, err
	}
	rt, err := python.Install(stateDir)
	if err != nil {
		return nil, fmt.Errorf("python runtime: %w", err)
	}
	p := &pythonTries{creds: creds, runtime: rt, dagsDir: dagsDir}
	p.api = web.NewExecutionAPI(web.ExecutionOptions{
		Store: st,
		Verify: func(token string) (store.TIKey, int, error) {
			k, err := creds.Verify(token)
			return store.TIKey{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, MapIndex: k.MapIndex}, k.TryNumber, err
		},
		Connection: func(id string) (web.ExecConnection, error) { return execConnection(conns, id) },
		Bundle: func(w io.Writer, k store.TIKey, _ int) error {
			run, err := st.Run(context.Background(), k.DagID, k.RunID)
			if err != nil {
				return err
			}
			dir, err := dagsDir(run.GitRevision)
			if err != nil {
				return err
			}
			return python.WriteBundle(w, dir)
		},
		Mask: masker, Log: logger,
	})
	return p, nil
}

// local is the local executor's Python settings, the API at apiURL.
func (p *pythonTries) local(interpreter, apiURL string) local.Python {
	return local.Python{Interpreter: interpreter, Runtime: p.runtime, APIURL: apiURL, Credentials: p.creds, DagsDir: p.dagsDir}
}

// pods is the Kubernetes executor's Python settings.
func (p *pythonTries) pods(image, apiURL string) *kubeexec.PythonPods {
	return &kubeexec.PythonPods{Image: image, APIURL: apiURL, Credentials: p.creds}
}

// results reads what a Python pod reported.
func (p *pythonTries) results(st *store.Store) func(context.Context, executor.TryKey) (*python.Result, error) {
	return func(ctx context.Context, k executor.TryKey) (*python.Result, error) {
		b, ok, err := st.TryResult(ctx, store.TIKey{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, MapIndex: k.MapIndex}, k.TryNumber)
		if err != nil || !ok {
			return nil, err
		}
		return python.ParseResult(b)
	}
}

// serveAPI serves only the Execution API on a loopback port until ctx
// ends ("dags test" has no web server) and returns its URL.
func (p *pythonTries) serveAPI(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/execution/", http.StripPrefix("/execution", p.api))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	return "http://" + ln.Addr().String(), nil
}

func execConnection(conns builtin.Connections, id string) (web.ExecConnection, error) {
	c, err := conns.Get(id)
	if errors.Is(err, builtin.ErrNoConnection) {
		return web.ExecConnection{}, store.ErrNotFound
	}
	if err != nil {
		return web.ExecConnection{}, err
	}
	out := web.ExecConnection{ConnID: id, ConnType: c.Type, Host: c.Host, Schema: c.Schema, Login: c.Login, Password: c.Password}
	if c.Port != 0 {
		port := c.Port
		out.Port = &port
	}
	if len(c.Extra) > 0 {
		b, _ := json.Marshal(c.Extra)
		extra := string(b)
		out.Extra = &extra
	}
	return out, nil
}

// loopbackURL is the URL a process on this host reaches a listener at.
func loopbackURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// runtimeDir is the private folder the runner is written to, beside the
// logs (which only the server's user reads).
func runtimeDir(logs string) string { return filepath.Join(logs, ".python") }
