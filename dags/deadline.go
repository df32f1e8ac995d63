package dags

import (
	"strings"
	"time"
)

// Deadline is a time a run should have ended by (Airflow 3.1's
// DeadlineAlert): Interval after its Reference. A run still unfinished then,
// or that ends later, has missed it; the miss is recorded once and sent to
// Mattermost (Channel, or where the DAG's alerts go).
type Deadline struct {
	Reference string        `json:"reference"`          // one of the Deadline* references
	At        *time.Time    `json:"datetime,omitempty"` // with DeadlineFixed
	Interval  time.Duration `json:"interval"`
	Channel   string        `json:"channel,omitempty"`
}

// Deadline references (Airflow's DeadlineReference names in lower case).
const (
	DeadlineLogicalDate = "dagrun_logical_date" // the run's logical date
	DeadlineQueuedAt    = "dagrun_queued_at"    // when the run was queued
	DeadlineStart       = "dagrun_start"        // when the run started (none before)
	DeadlineFixed       = "fixed_datetime"      // a fixed time, the same for every run
)

// deadlineRefs maps the names a file may use to a reference.
var deadlineRefs = map[string]string{
	"dagrun_logical_date": DeadlineLogicalDate, "logical_date": DeadlineLogicalDate,
	"dagrun_queued_at": DeadlineQueuedAt, "queued_at": DeadlineQueuedAt,
	"dagrun_start": DeadlineStart, "dagrun_start_date": DeadlineStart, "start": DeadlineStart, "start_date": DeadlineStart,
	"fixed_datetime": DeadlineFixed, "fixed": DeadlineFixed, "datetime": DeadlineFixed,
}

// For is when a run with these times must have ended; false when the
// reference is not known yet (a run that has not started).
func (dl Deadline) For(logical, queued time.Time, start *time.Time) (time.Time, bool) {
	switch dl.Reference {
	case DeadlineLogicalDate:
		return logical.Add(dl.Interval), true
	case DeadlineQueuedAt:
		return queued.Add(dl.Interval), true
	case DeadlineStart:
		if start == nil {
			return time.Time{}, false
		}
		return start.Add(dl.Interval), true
	case DeadlineFixed:
		if dl.At == nil {
			return time.Time{}, false
		}
		return dl.At.Add(dl.Interval), true
	}
	return time.Time{}, false
}

// Describe says what the deadline is, for messages and pages.
func (dl Deadline) Describe() string {
	ref := strings.ReplaceAll(strings.TrimPrefix(dl.Reference, "dagrun_"), "_", " ")
	if dl.Reference == DeadlineFixed && dl.At != nil {
		ref = dl.At.UTC().Format("2006-01-02 15:04 MST")
	}
	if dl.Interval == 0 {
		return ref
	}
	sign := "+"
	d := dl.Interval
	if d < 0 {
		sign, d = "-", -d
	}
	return ref + " " + sign + " " + d.String()
}

var deadlineKeys = []string{"reference", "interval", "datetime", "channel", "callback", "callback_kwargs"}

// deadlines reads the DAG's deadline: one mapping or a list of them, as
// {reference: dagrun_logical_date, interval: 8h} (Airflow's reference names
// with or without DeadlineReference., any case), with datetime for a fixed
// one and an optional Mattermost channel. A callback is not run: the miss
// goes to Mattermost.
func (d *dagDecoder) deadlines(dag *DAG) {
	v := d.spec.get("deadline")
	if v == nil || v.isNull() {
		return
	}
	r := d.r
	items := []*val{v}
	if v.kind == kindSeq {
		items = v.items
	}
	for _, it := range items {
		if it.kind != kindMap {
			r.errf(it, "deadline: expected {reference: ..., interval: ...}, got %s", it.describe())
			continue
		}
		for _, k := range it.keys {
			if !contains(deadlineKeys, k.str) {
				r.errf(k, "deadline: unknown key %q%s", k.str, suggest(k.str, deadlineKeys))
			}
		}
		var dl Deadline
		ref := it.get("reference")
		if ref == nil {
			r.errf(it, "deadline: reference is required (dagrun_logical_date, dagrun_queued_at, dagrun_start or fixed_datetime)")
			continue
		}
		name, _ := r.str("deadline.reference", ref)
		name = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(name, "DeadlineReference."), "deadlinereference."))
		if dl.Reference = deadlineRefs[name]; dl.Reference == "" {
			r.errf(ref, "deadline.reference %q: use dagrun_logical_date, dagrun_queued_at, dagrun_start or fixed_datetime", name)
			continue
		}
		iv := it.get("interval")
		if iv == nil {
			r.errf(it, "deadline: interval is required (for example 8h, \"8 hours\" or a datetime.timedelta)")
			continue
		}
		var ok bool
		if dl.Interval, ok = r.duration("deadline.interval", iv); !ok {
			continue
		}
		if at := it.get("datetime"); at != nil {
			t, ok := r.datetime("deadline.datetime", at, dag.Location, d.now)
			if !ok {
				continue
			}
			dl.At = &t
		}
		if dl.Reference == DeadlineFixed && dl.At == nil {
			r.errf(it, "deadline: a fixed_datetime deadline needs datetime")
			continue
		}
		if c := it.get("channel"); c != nil {
			dl.Channel, _ = r.str("deadline.channel", c)
		}
		for _, key := range []string{"callback", "callback_kwargs"} {
			if cb := it.get(key); cb != nil {
				r.warnf(cb, "deadline.%s is not run: a missed deadline is sent to Mattermost (set channel to choose where)", key)
			}
		}
		dag.Deadlines = append(dag.Deadlines, dl)
	}
}
