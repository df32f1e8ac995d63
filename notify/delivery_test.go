package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/store"
)

// hook is a webhook on loopback that records every post it takes (before
// it answers) and answers as answer says.
type hook struct {
	mu     sync.Mutex
	texts  []string
	srv    *httptest.Server
	answer func(n int) (delay time.Duration, status int)
}

func newHook(t *testing.T, answer func(n int) (time.Duration, int)) *hook {
	h := &hook{answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m Message
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &m); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		n := len(h.texts)
		delay, status := h.answer(n)
		if status/100 == 2 {
			h.texts = append(h.texts, m.Text)
		}
		h.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) posts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.texts...)
}

// clock is a test's time: the notifier's backoff and due times follow it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func hookFixture(t *testing.T, h *hook, o Options) *fixture {
	f := newFixture(t, o)
	f.n.o.WebhookURL = func() (string, error) { return h.srv.URL + "/hooks/x", nil }
	if o.Client == nil {
		f.n.o.Client = &http.Client{}
	}
	if o.RetryBase > 0 {
		f.n.o.RetryBase = o.RetryBase // newFixture's is short, for real-time tests
	}
	return f
}

// importAlert records one import error, the simplest alert.
func (f *fixture) importAlert(t *testing.T, i int, at time.Time) {
	f.add(t, store.Alert{Key: fmt.Sprintf("ie:%d", i), Kind: store.AlertImportError, File: fmt.Sprintf("file_%d.yaml", i),
		Detail: "bad cron", CreatedAt: at})
}

// stepUntilSent steps a clocked notifier, moving the clock to each next
// due time, until nothing is pending (or maxSteps).
func stepUntilSent(t *testing.T, f *fixture, c *clock, maxSteps int) {
	t.Helper()
	for i := 0; i < maxSteps; i++ {
		next, err := f.n.Step(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		counts, _ := f.st.CountAlerts(f.ctx)
		if counts[store.AlertPending] == 0 {
			return
		}
		if next.After(c.now()) {
			c.set(next)
		}
	}
	all, _ := f.st.Alerts(f.ctx, 100)
	t.Fatalf("still pending after %d steps: %+v", maxSteps, all)
}

// A webhook that answers after 12 s (a Mattermost under load) is waited
// for: one copy, no resend (the default timeout is 30 s).
func TestSlowWebhookGetsOneCopy(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(int) (time.Duration, int) { return 12 * time.Second, 200 })
	f := hookFixture(t, h, Options{})
	f.importAlert(t, 1, time.Now())
	f.drain(t, 60*time.Second)
	if p := h.posts(); len(p) != 1 || strings.Contains(p[0], "resent") {
		t.Fatalf("posts: %q", p)
	}
}

// A webhook that posts but answers after the timeout gets the message
// once more, marked as a possible repeat, and never a third time; the
// resend waits a backoff from the end of the timed-out attempt.
func TestTimedOutSendIsResentOnceMarked(t *testing.T) {
	t.Parallel()
	h := newHook(t, func(int) (time.Duration, int) { return 3 * time.Second, 200 }) // always too late
	f := hookFixture(t, h, Options{Timeout: time.Second, RetryBase: 50 * time.Millisecond})
	f.importAlert(t, 1, time.Now())
	f.drain(t, 30*time.Second)
	p := h.posts()
	if len(p) != 2 || strings.Contains(p[0], "resent") || !strings.Contains(p[1], "_(resent: the first attempt timed out)_") {
		t.Fatalf("posts: %q", p)
	}
	all, _ := f.st.Alerts(f.ctx, 10)
	if all[0].State != store.AlertSent || !strings.Contains(all[0].LastError, "not confirmed") {
		t.Errorf("alert %+v", all[0])
	}
}

// A webhook answering 500 for 60 s: retried with backoff counted from each
// attempt's end, delivered once when it is back; nothing is dropped.
func TestWebhookDownForAMinute(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2024, 5, 1, 7, 0, 0, 0, time.UTC)}
	start := c.now()
	h := newHook(t, func(int) (time.Duration, int) {
		if c.now().Sub(start) < 60*time.Second {
			return 0, 500
		}
		return 0, 200
	})
	f := hookFixture(t, h, Options{Now: c.now, RetryBase: 2 * time.Second})
	f.importAlert(t, 1, start)
	stepUntilSent(t, f, c, 50)
	if p := h.posts(); len(p) != 1 || strings.Contains(p[0], "resent") {
		t.Fatalf("posts: %q", p)
	}
	all, _ := f.st.Alerts(f.ctx, 10)
	if all[0].Attempts < 5 || all[0].Attempts > 7 {
		t.Errorf("%d attempts over a minute of 2, 4, 8, 16, 32 s backoff", all[0].Attempts)
	}
}

// After an outage the messages of one channel go out in the order their
// events happened, whatever their own retry clocks said.
func TestOrderAfterRecovery(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2024, 5, 1, 7, 0, 0, 0, time.UTC)}
	start := c.now()
	h := newHook(t, func(int) (time.Duration, int) {
		if c.now().Sub(start) < 45*time.Second {
			return 0, 503
		}
		return 0, 200
	})
	f := hookFixture(t, h, Options{Now: c.now, RetryBase: 2 * time.Second})
	for i := 0; i < 6; i++ {
		at := start.Add(time.Duration(i) * 7 * time.Second)
		c.set(at)
		f.importAlert(t, i, at)
		if _, err := f.n.Step(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	stepUntilSent(t, f, c, 100)
	p := h.posts()
	if len(p) != 6 {
		t.Fatalf("posts: %q", p)
	}
	for i, text := range p {
		if !strings.Contains(text, fmt.Sprintf("**file_%d.yaml**", i)) {
			t.Fatalf("post %d is not file_%d's: %q", i, i, p)
		}
	}
}

// A message the webhook refuses for itself (400, e.g. too long) is retried
// on its own clock and holds nothing back.
func TestRefusedMessageHoldsNothingBack(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Date(2024, 5, 1, 7, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	refused := 0
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "file_0.yaml") {
			mu.Lock()
			refused++
			mu.Unlock()
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		var m Message
		json.Unmarshal(body, &m)
		h.mu.Lock()
		h.texts = append(h.texts, m.Text)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	f := hookFixture(t, h, Options{Now: c.now})
	f.importAlert(t, 0, c.now())
	f.importAlert(t, 1, c.now())
	for i := 0; i < 3; i++ {
		next, err := f.n.Step(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.set(next)
	}
	if p := h.posts(); len(p) != 1 || !strings.Contains(p[0], "file_1.yaml") {
		t.Fatalf("posts: %q", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused < 2 {
		t.Errorf("the refused message was tried %d times", refused)
	}
}

// The run in a task failure's message links to the run page.
func TestTaskFailureLinksTheRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Options{})
	f.failRun(t, "plain", "r22", "t")
	f.drain(t, 10*time.Second)
	posts := f.mm.Posts()
	if len(posts) != 1 || !strings.Contains(posts[0].Raw, `"title":"Run","value":"[r22](https://updraft.example.com/dags/plain/runs/r22)"`) {
		t.Fatalf("posts: %+v", posts)
	}
}
