package notify

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
	"updraft/store/trylog"
)

const (
	colorFailed  = "#d92d20"
	colorWarning = "#f59e0b"
	colorOK      = "#2e9d4c"
	maxTaskBoxes = 5 // attachments per message; more failed tasks are listed by name
)

// compose builds the message for a group of events, and says whether it
// is to be sent at all (by the settings and the DAG file's callbacks).
func (n *Notifier) compose(ctx context.Context, g []store.Alert) (Message, bool, error) {
	first := g[0]
	d := n.dag(first.DagID)
	msg := Message{Channel: n.o.Channel, Username: n.o.Username, IconURL: n.o.IconURL}
	switch first.Kind {
	case store.AlertTaskFailed, store.AlertRunFailed:
		return n.failure(ctx, g, d, msg)
	case store.AlertTaskRetry:
		if !n.o.Send["retry"] && !hasCallback(d, first.TaskID, "on_retry_callback") {
			return msg, false, nil
		}
		n.route(&msg, d, first.TaskID, "on_retry_callback")
		msg.Text = fmt.Sprintf(":warning: Task **%s** of %s failed try %d and will be retried: %s\n%s", first.TaskID,
			n.dagLink(first.DagID), first.Try, orDash(first.Detail), n.taskLine(first))
		box, err := n.taskBox(ctx, first, colorWarning)
		if err != nil {
			return msg, false, err
		}
		msg.Attachments = []Attachment{box}
	case store.AlertRunSuccess:
		recovered, err := n.recovered(ctx, first)
		if err != nil {
			return msg, false, err
		}
		switch {
		case recovered && n.o.Send["recovery"]:
			msg.Text = fmt.Sprintf(":large_green_circle: %s recovered: run %s succeeded after a failed run", n.dagLink(first.DagID), n.runLink(first))
		case n.o.Send["success"] || hasCallback(d, "", "on_success_callback"):
			msg.Text = fmt.Sprintf(":white_check_mark: Run %s of %s succeeded", n.runLink(first), n.dagLink(first.DagID))
		default:
			return msg, false, nil
		}
		n.route(&msg, d, "", "on_success_callback")
	case store.AlertTaskMarkedFailed, store.AlertRunMarkedFailed:
		if !n.o.Send["marked"] {
			return msg, false, nil
		}
		what := "Run " + n.runLink(first)
		if first.TaskID != "" {
			what = "Task **" + first.TaskID + "** in run " + n.runLink(first)
		}
		msg.Text = fmt.Sprintf(":red_circle: %s of %s was %s", what, n.dagLink(first.DagID), first.Detail)
		n.route(&msg, d, first.TaskID, "on_failure_callback")
	case store.AlertDeadlineMissed:
		what, missed := "Run "+n.runLink(first), "deadline"
		if first.TaskID != "" {
			what, missed = "Task **"+first.TaskID+"** in run "+n.runLink(first), "SLA"
		}
		msg.Text = fmt.Sprintf(":alarm_clock: %s of %s missed its %s: %s", what, n.dagLink(first.DagID), missed, first.Detail)
		// The deadline's own channel, else where the DAG's sla_miss or
		// failure callback sends, else the server's.
		if d != nil && first.Try > 0 && first.Try <= len(d.Deadlines) && d.Deadlines[first.Try-1].Channel != "" {
			msg.Channel = strings.TrimPrefix(d.Deadlines[first.Try-1].Channel, "#")
		} else if cb, _ := findCallback(d, first.TaskID, "sla_miss_callback"); cb != nil {
			n.route(&msg, d, first.TaskID, "sla_miss_callback")
		} else {
			n.route(&msg, d, first.TaskID, "on_failure_callback")
		}
	case store.AlertImportError:
		msg.Text = fmt.Sprintf(":red_circle: DAG file **%s** has import errors; its DAGs keep their last good version until it is fixed.\n%s",
			first.File, n.fileLine(first.File))
		msg.Attachments = []Attachment{{Fallback: "import errors in " + first.File, Color: colorFailed, Title: first.File,
			TitleLink: n.link("files", fileToken(first.File)), Text: codeBlock(first.Detail)}}
	case store.AlertImportFixed:
		if !n.o.Send["recovery"] {
			return msg, false, nil
		}
		msg.Text = fmt.Sprintf(":large_green_circle: DAG file **%s** loads again.", first.File)
	default:
		return msg, false, nil
	}
	return msg, true, nil
}

// failure is the message for a run's failures: one task, several tasks,
// or the run alone (a dagrun_timeout, a deadlock).
func (n *Notifier) failure(ctx context.Context, g []store.Alert, d *dags.DAG, msg Message) (Message, bool, error) {
	var tasks []store.Alert
	var run *store.Alert
	for i := range g {
		if g[i].Kind == store.AlertTaskFailed {
			tasks = append(tasks, g[i])
		} else {
			run = &g[i]
		}
	}
	first := g[0]
	taskID := ""
	if len(tasks) == 1 {
		taskID = tasks[0].TaskID
	}
	custom := n.route(&msg, d, taskID, "on_failure_callback")
	var lines []string
	switch {
	case len(tasks) == 1:
		lines = []string{fmt.Sprintf(":red_circle: Task **%s** failed: %s", tasks[0].TaskID, orDash(tasks[0].Detail)),
			"**Dag**: " + n.dagLink(first.DagID), n.taskLine(tasks[0])}
	case len(tasks) > 1:
		lines = []string{fmt.Sprintf(":red_circle: **%d tasks failed** in one run: %s", len(tasks), strings.Join(sortedTasks(tasks), ", ")),
			"**Dag**: " + n.dagLink(first.DagID), "**Run**: " + n.runLink(first)}
	default:
		reason := run.Detail
		switch reason {
		case "timed_out":
			reason = "dagrun_timeout exceeded"
		case "all_tasks_deadlocked":
			reason = "no task can run any more (deadlock)"
		case "":
			reason = "a leaf task did not succeed"
		}
		lines = []string{fmt.Sprintf(":red_circle: Run failed: %s", reason), "**Dag**: " + n.dagLink(first.DagID), "**Run**: " + n.runLink(first)}
	}
	if custom != "" {
		lines[0] = custom
	}
	msg.Text = strings.Join(lines, "\n")
	for i, t := range tasks {
		if i == maxTaskBoxes {
			break
		}
		box, err := n.taskBox(ctx, t, colorFailed)
		if err != nil {
			return msg, false, err
		}
		msg.Attachments = append(msg.Attachments, box)
	}
	return msg, true, nil
}

// route applies a DAG file's notifier callback (task level first, then the
// DAG's): its channel, and its text rendered with the run's context, which
// is returned.
func (n *Notifier) route(msg *Message, d *dags.DAG, taskID, callback string) string {
	cb, t := findCallback(d, taskID, callback)
	if cb == nil {
		return ""
	}
	if ch := cb.Args["channel"]; ch != "" {
		msg.Channel = strings.TrimPrefix(ch, "#")
	}
	for _, k := range []string{"username", "icon_url"} {
		if v := cb.Args[k]; v != "" {
			if k == "username" {
				msg.Username = v
			} else {
				msg.IconURL = v
			}
		}
	}
	text := cb.Args["text"]
	if text == "" {
		return ""
	}
	if t == nil {
		t = &dags.Task{}
	}
	out, err := dags.NewRenderer(t, dags.RunContext{DAG: d}, nil).RenderString(text)
	if err != nil {
		return text
	}
	return out
}

func findCallback(d *dags.DAG, taskID, name string) (*dags.Callback, *dags.Task) {
	if d == nil {
		return nil, nil
	}
	var t *dags.Task
	if taskID != "" {
		t = d.Task(taskID)
	}
	if t != nil {
		if cb, ok := t.Callbacks[name]; ok && cb.Notifier != "" {
			return &cb, t
		}
	}
	if cb, ok := d.Callbacks[name]; ok && cb.Notifier != "" {
		return &cb, t
	}
	return nil, t
}

func hasCallback(d *dags.DAG, taskID, name string) bool {
	cb, _ := findCallback(d, taskID, name)
	return cb != nil
}

// taskBox is an attachment for one failed try: run, try, duration,
// reason, and the end of its log (secrets masked).
func (n *Notifier) taskBox(ctx context.Context, a store.Alert, color string) (Attachment, error) {
	k := store.TIKey{DagID: a.DagID, RunID: a.RunID, TaskID: a.TaskID, MapIndex: -1}
	box := Attachment{Fallback: a.DagID + "." + a.TaskID + " failed", Color: color, Title: fmt.Sprintf("%s · try %d", a.TaskID, a.Try),
		TitleLink: n.link("dags", a.DagID, "runs", a.RunID, "tasks", a.TaskID)}
	box.Fields = append(box.Fields, Field{Title: "Run", Value: n.runLink(a), Short: true})
	tries, err := n.o.Store.Tries(ctx, k)
	if err != nil {
		return box, err
	}
	ti, err := n.o.Store.TaskInstance(ctx, k)
	if err == nil {
		box.Fields = append(box.Fields, Field{Title: "Try", Value: fmt.Sprintf("%d of %d", a.Try, ti.MaxTries+1), Short: true})
	}
	for _, t := range tries {
		if t.TryNumber != a.Try {
			continue
		}
		if t.EndDate != nil {
			box.Fields = append(box.Fields, Field{Title: "Duration", Value: t.EndDate.Sub(t.StartDate).Round(time.Second).String(), Short: true})
		}
		if t.Reason != "" {
			box.Fields = append(box.Fields, Field{Title: "Reason", Value: t.Reason, Short: true})
		}
		tail, err := n.logTail(ctx, t)
		if err != nil {
			return box, err
		}
		if tail != "" {
			box.Text = codeBlock(tail)
		}
	}
	return box, nil
}

// logTail returns the last lines of a try's log, secrets masked.
func (n *Notifier) logTail(ctx context.Context, t store.Try) (string, error) {
	l, err := trylog.Open(ctx, n.o.Store, t)
	if err != nil {
		return "", nil // no log to quote
	}
	defer l.Close()
	const window = 64 << 10
	start := max(0, l.Size-window)
	buf, err := l.Read(ctx, start, l.Size-start)
	if err != nil {
		return "", nil
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if start > 0 && len(lines) > 1 {
		lines = lines[1:] // the first may be cut
	}
	if len(lines) > n.o.LogLines {
		lines = lines[len(lines)-n.o.LogLines:]
	}
	secrets, err := n.o.Store.SecretValues(ctx)
	if err != nil {
		return "", fmt.Errorf("read secret values to mask: %w", err)
	}
	return n.o.Mask.Mask(dags.Mask(strings.Join(lines, "\n"), secrets)), nil
}

// recovered reports whether the run before this successful one failed.
func (n *Notifier) recovered(ctx context.Context, a store.Alert) (bool, error) {
	run, err := n.o.Store.Run(ctx, a.DagID, a.RunID)
	if err != nil {
		return false, nil
	}
	before := run.LogicalDate.Add(-time.Nanosecond)
	prev, err := n.o.Store.Runs(ctx, store.RunFilter{DagID: a.DagID, LogicalLTE: &before, Limit: 1})
	if err != nil {
		return false, err
	}
	return len(prev) == 1 && prev[0].State == dags.RunFailed, nil
}

func (n *Notifier) dag(id string) *dags.DAG {
	if id == "" || n.o.Bag == nil {
		return nil
	}
	res, _ := n.o.Bag.Current()
	for _, d := range res.DAGs {
		if d.ID == id {
			return d
		}
	}
	return nil
}

// link is a page of the UI, or "" without a public URL.
func (n *Notifier) link(segments ...string) string {
	if n.o.PublicURL == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(n.o.PublicURL, "/"))
	for _, s := range segments {
		b.WriteString("/")
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// md is a Markdown link, or the bare text without a public URL.
func md(text, href string) string {
	if href == "" {
		return text
	}
	return "[" + strings.NewReplacer("[", `\[`, "]", `\]`).Replace(text) + "](" + href + ")"
}

func (n *Notifier) dagLink(dagID string) string { return md(dagID, n.link("dags", dagID)) }

func (n *Notifier) runLink(a store.Alert) string {
	return md(a.RunID, n.link("dags", a.DagID, "runs", a.RunID))
}

func (n *Notifier) taskLine(a store.Alert) string {
	return "**Task**: " + md(a.TaskID, n.link("dags", a.DagID, "runs", a.RunID, "tasks", a.TaskID))
}

func (n *Notifier) fileLine(file string) string {
	return "**File**: " + md(file, n.link("files", fileToken(file)))
}

// fileToken is how the UI names a file in its /files/ links.
func fileToken(file string) string {
	return strings.TrimRight(base64URL(file), "=")
}

func codeBlock(s string) string {
	return "```\n" + strings.ReplaceAll(s, "```", "'''") + "\n```"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
