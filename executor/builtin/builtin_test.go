package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/local"
	"updraft/notify/mattermosttest"
)

// gosnowflake keeps its own HTTP transport (and its idle keep-alive
// connections) past db.Close; those idle connections are not ours to close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"))
}

// final waits for a try's final event.
func final(t *testing.T, ex executor.Executor, k executor.TryKey) executor.Event {
	t.Helper()
	return finals(t, ex, k)[k]
}

// finals waits for the final event of each of keys, in whatever order
// they come (another try's event is not lost while one is awaited).
func finals(t *testing.T, ex executor.Executor, keys ...executor.TryKey) map[executor.TryKey]executor.Event {
	t.Helper()
	out := map[executor.TryKey]executor.Event{}
	timeout := time.After(10 * time.Second)
	for len(out) < len(keys) {
		select {
		case ev := <-ex.Events():
			if ev.State != executor.Running && slices.Contains(keys, ev.Key) {
				out[ev.Key] = ev
			}
		case <-timeout:
			t.Fatalf("no final event for some of %v: got %v", keys, out)
		}
	}
	return out
}

func try(t *testing.T, id string, spec dags.OperatorSpec) executor.Try {
	return executor.Try{Key: executor.TryKey{DagID: "d", RunID: "r", TaskID: id, TryNumber: 1, MapIndex: -1}, Spec: spec,
		LogPath: filepath.Join(t.TempDir(), id+".log")}
}

func TestHTTPOperator(t *testing.T) {
	var mu sync.Mutex // a cancelled try's request may still be served when the next arrives
	var got []*http.Request
	var bodies []string
	seen := func(i int) (*http.Request, string) {
		mu.Lock()
		defer mu.Unlock()
		if i >= len(got) {
			return &http.Request{Header: http.Header{}, URL: &url.URL{}}, ""
		}
		return got[i], bodies[i]
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r.Clone(context.Background())), append(bodies, string(b))
		mu.Unlock()
		switch r.URL.Path {
		case "/api/status":
			io.WriteString(w, `{"status": "ok", "token": "s3cret-token"}`)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	env := map[string]string{"UPDRAFT_CONN_SVC": strings.Replace(srv.URL, "http://", "http://bot:pw@", 1) + "?X-Team=data"}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }},
		Secrets: func(context.Context) ([]string, error) { return []string{"s3cret-token"}, nil }})
	ctx := context.Background()

	ok := try(t, "ok", dags.HttpSpec{ConnID: "svc", Endpoint: "api/status", Method: "GET", Form: map[string]string{"since": "2024-05-01"},
		Headers: map[string]string{"Accept": "application/json"}, CheckRegex: `"status":\s*"ok"`, LogResponse: true})
	if err := ex.Start(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if ev := final(t, ex, ok.Key); ev.State != executor.Succeeded {
		t.Fatalf("ok: %+v", ev)
	}
	r, _ := seen(0)
	if user, pw, _ := r.BasicAuth(); user != "bot" || pw != "pw" || r.URL.Query().Get("since") != "2024-05-01" || r.Header.Get("X-Team") != "data" || r.Header.Get("Accept") != "application/json" {
		t.Fatalf("request: %v %v", r.URL, r.Header)
	}
	log, _ := os.ReadFile(ok.LogPath)
	if !strings.Contains(string(log), "GET "+srv.URL+"/api/status?since=2024-05-01") || !strings.Contains(string(log), "HTTP 200") ||
		!strings.Contains(string(log), `"token": "***"`) || strings.Contains(string(log), "pw@") {
		t.Fatalf("log:\n%s", log)
	}

	post := try(t, "post", dags.HttpSpec{ConnID: "svc", Endpoint: "/missing", Method: "POST", Body: `{"a":1}`, Headers: map[string]string{"Content-Type": "application/json"}})
	if err := ex.Start(ctx, post); err != nil {
		t.Fatal(err)
	}
	ev := final(t, ex, post.Key)
	if _, body := seen(1); ev.State != executor.Failed || ev.Reason != "HTTP 404 Not Found" || body != `{"a":1}` {
		t.Fatalf("post: %+v %q", ev, body)
	}
	form := try(t, "form", dags.HttpSpec{ConnID: "svc", Endpoint: "/api/status", Method: "POST", Form: map[string]string{"x": "1 2"}, CheckStatus: []int{201}})
	ex.Start(ctx, form)
	ev = final(t, ex, form.Key)
	if r, body := seen(2); ev.State != executor.Failed || !strings.Contains(ev.Reason, "status 200 is not one of [201]") || body != "x=1+2" ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		t.Fatalf("form: %+v %q", ev, body)
	}
	// Killed and timed out tries end with the reason.
	slow := try(t, "slow", dags.HttpSpec{ConnID: "svc", Endpoint: "/slow", Method: "GET"})
	ex.Start(ctx, slow)
	time.Sleep(50 * time.Millisecond)
	ex.Kill(ctx, slow.Key, "killed: marked failed")
	if ev := final(t, ex, slow.Key); ev.State != executor.Failed || ev.Reason != "killed: marked failed" {
		t.Fatalf("killed: %+v", ev)
	}
	timed := try(t, "timed", dags.HttpSpec{ConnID: "svc", Endpoint: "/slow", Method: "GET"})
	timed.Timeout = 100 * time.Millisecond
	ex.Start(ctx, timed)
	if ev := final(t, ex, timed.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, "execution_timeout of 100ms exceeded") {
		t.Fatalf("timed out: %+v", ev)
	}
	missing := try(t, "missing", dags.HttpSpec{ConnID: "nope", Method: "GET"})
	ex.Start(ctx, missing)
	if ev := final(t, ex, missing.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, `connection "nope"`) {
		t.Fatalf("missing connection: %+v", ev)
	}
	if err := ex.Adopt(ctx, ok); !errors.Is(err, executor.ErrGone) {
		t.Fatalf("adopt: %v", err)
	}
}

// The Mattermost operator posts to <host>/hooks/<password> of its
// connection (the stand-in speaks Mattermost's incoming-webhook contract).
func TestMattermostOperator(t *testing.T) {
	mm := mattermosttest.Start(t)
	base, hook, _ := strings.Cut(mm.URL(), "/hooks/")
	env := map[string]string{"UPDRAFT_CONN_MATTERMOST": `{"conn_type": "mattermost", "host": "` + base + `", "password": "` + hook + `"}`}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	spec := dags.MattermostSpec{ConnID: "mattermost", Text: "New tables", Channel: "bizops", Username: "Airflow", IconEmoji: ":warning:",
		Attachments: []map[string]any{{"title": "[Schema a] New tables", "color": "#ffcc00", "text": " - t1\n - t2"}}}
	tr := try(t, "notify", spec)
	if err := ex.Start(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	if ev := final(t, ex, tr.Key); ev.State != executor.Succeeded {
		t.Fatalf("post: %+v", ev)
	}
	posts := mm.Posts()
	if len(posts) != 1 || posts[0].Channel != "bizops" || posts[0].Username != "Airflow" || posts[0].Attachments[0]["title"] != "[Schema a] New tables" {
		t.Fatalf("posts: %+v", posts)
	}
	var raw map[string]any
	json.Unmarshal([]byte(posts[0].Raw), &raw)
	if raw["icon_emoji"] != ":warning:" {
		t.Fatalf("payload: %s", posts[0].Raw)
	}
	mm.Script("400")
	tr2 := try(t, "notify2", spec)
	ex.Start(context.Background(), tr2)
	if ev := final(t, ex, tr2.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, "the webhook answered 400") {
		t.Fatalf("refused post: %+v", ev)
	}
	if log, _ := os.ReadFile(tr2.LogPath); strings.Contains(string(log), hook) {
		t.Fatal("the webhook id is in the log")
	}
}

// The router sends in-process specs here and the rest to the main
// executor, and merges their events.
func TestRouter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	env := map[string]string{"UPDRAFT_CONN_SVC": srv.URL}
	r := NewRouter(local.New(2, nil), New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if r.Free() != 2+8 {
		t.Fatalf("free %d", r.Free())
	}
	h := try(t, "http", dags.HttpSpec{ConnID: "svc", Method: "GET"})
	b := try(t, "bash", dags.BashSpec{Command: "echo hi"})
	for _, tr := range []executor.Try{h, b} {
		if err := r.Start(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	for k, ev := range finals(t, r, h.Key, b.Key) {
		if ev.State != executor.Succeeded {
			t.Fatalf("%s: %+v", k, ev)
		}
	}
	if log, _ := os.ReadFile(h.LogPath); !strings.Contains(string(log), "running in-process") {
		t.Fatalf("http log: %s", log)
	}
	if err := r.Adopt(ctx, h); !errors.Is(err, executor.ErrGone) {
		t.Fatalf("adopt in-process: %v", err)
	}
}
