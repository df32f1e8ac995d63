package dags

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DataInterval is the half-open period [Start, End) a run processes.
type DataInterval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// DagRunInfo says when a scheduled run may be created and what it covers.
// Its logical date is Interval.Start.
type DagRunInfo struct {
	RunAfter time.Time
	Interval DataInterval
}

// Restriction bounds scheduling: Earliest is the DAG's start date, Latest
// its end date (no run starts after it), Catchup whether missed intervals
// are all run or only the latest.
type Restriction struct {
	Earliest *time.Time
	Latest   *time.Time
	Catchup  bool
}

// Timetable is an Airflow 2.x timetable: it decides the data interval of the
// next scheduled run. Implementations are pure: now is passed in, so tests
// can walk across months and DST changes.
type Timetable interface {
	// Next returns the next scheduled run after the last automated one
	// (nil when there has been none), or false when there is none.
	Next(last *DataInterval, r Restriction, now time.Time) (DagRunInfo, bool)
	// InferManual returns the data interval of a manual run triggered at runAfter.
	InferManual(runAfter time.Time) DataInterval
	// Summary is the schedule as users wrote it: "0 3 * * *", "@daily", "None".
	Summary() string
	// Periodic is false for None and @once: no recurring runs.
	Periodic() bool
}

// NullTimetable is schedule None: runs only when triggered.
type NullTimetable struct{}

func (NullTimetable) Next(*DataInterval, Restriction, time.Time) (DagRunInfo, bool) {
	return DagRunInfo{}, false
}
func (NullTimetable) InferManual(t time.Time) DataInterval { return DataInterval{t, t} }
func (NullTimetable) Summary() string                      { return "None" }
func (NullTimetable) Periodic() bool                       { return false }

// OnceTimetable is @once: one run at the start date.
type OnceTimetable struct{}

func (OnceTimetable) Next(last *DataInterval, r Restriction, _ time.Time) (DagRunInfo, bool) {
	if last != nil || r.Earliest == nil {
		return DagRunInfo{}, false
	}
	at := *r.Earliest
	if r.Latest != nil && at.After(*r.Latest) {
		return DagRunInfo{}, false
	}
	return DagRunInfo{RunAfter: at, Interval: DataInterval{at, at}}, true
}
func (OnceTimetable) InferManual(t time.Time) DataInterval { return DataInterval{t, t} }
func (OnceTimetable) Summary() string                      { return "@once" }
func (OnceTimetable) Periodic() bool                       { return false }

// DeltaTimetable is a timedelta schedule: fixed-length intervals anchored at
// the start date, unaffected by DST (Airflow's DeltaDataIntervalTimetable).
type DeltaTimetable struct {
	Delta time.Duration
}

func (d DeltaTimetable) Next(last *DataInterval, r Restriction, now time.Time) (DagRunInfo, bool) {
	earliest := r.Earliest
	if !r.Catchup {
		latest := now.Add(-d.Delta)
		if earliest == nil || latest.After(*earliest) {
			earliest = &latest
		}
	}
	var start time.Time
	switch {
	case last == nil && earliest == nil:
		return DagRunInfo{}, false
	case last == nil:
		start = *earliest
	default:
		start = last.End
		if earliest != nil && earliest.After(start) {
			start = *earliest
		}
	}
	if r.Latest != nil && start.After(*r.Latest) {
		return DagRunInfo{}, false
	}
	end := start.Add(d.Delta)
	return DagRunInfo{RunAfter: end, Interval: DataInterval{start, end}}, true
}

func (d DeltaTimetable) InferManual(t time.Time) DataInterval {
	return DataInterval{t.Add(-d.Delta), t}
}
func (d DeltaTimetable) Summary() string { return PyTimedelta(d.Delta) }
func (DeltaTimetable) Periodic() bool    { return true }

// PyTimedelta formats a duration the way Python's str(timedelta) does:
// "1 day, 0:00:00", "0:05:00".
func PyTimedelta(d time.Duration) string {
	days := int64(d / (24 * time.Hour))
	rest := d - time.Duration(days)*24*time.Hour
	h, m, s := int64(rest/time.Hour), int64(rest%time.Hour/time.Minute), int64(rest%time.Minute/time.Second)
	clock := fmt.Sprintf("%d:%02d:%02d", h, m, s)
	if us := int64(rest % time.Second / time.Microsecond); us != 0 {
		clock += fmt.Sprintf(".%06d", us)
	}
	switch days {
	case 0:
		return clock
	case 1:
		return "1 day, " + clock
	}
	return fmt.Sprintf("%d days, %s", days, clock)
}

// CronTimetable runs on a cron expression in a time zone. Without Trigger it
// is Airflow 2's CronDataIntervalTimetable: a run covers the interval between
// two ticks and is created at its end. With Trigger it is
// CronTriggerTimetable: a run fires at each tick with an interval of length
// Interval ending there.
type CronTimetable struct {
	Expr     string // as written ("@daily" or "0 3 * * *")
	Location *time.Location
	Trigger  bool
	Interval time.Duration

	sched   cronSchedule
	fixDST  bool
	summary string
}

// Next implements Airflow's next_dagrun_info for both cron timetables.
func (c *CronTimetable) Next(last *DataInterval, r Restriction, now time.Time) (DagRunInfo, bool) {
	if c.Trigger {
		return c.nextTrigger(last, r, now)
	}
	var earliest *time.Time
	if !r.Catchup {
		e := c.skipToLatest(r.Earliest, now)
		earliest = &e
	} else if r.Earliest != nil {
		e := c.alignToNext(*r.Earliest)
		earliest = &e
	}
	var start time.Time
	switch {
	case last == nil && earliest == nil:
		return DagRunInfo{}, false
	case last == nil:
		start = *earliest
	default:
		start = c.alignToPrev(last.End)
		if earliest != nil && earliest.After(start) {
			start = *earliest
		}
	}
	if r.Latest != nil && start.After(*r.Latest) {
		return DagRunInfo{}, false
	}
	end := c.next(start)
	return DagRunInfo{RunAfter: end, Interval: DataInterval{start, end}}, true
}

func (c *CronTimetable) nextTrigger(last *DataInterval, r Restriction, now time.Time) (DagRunInfo, bool) {
	var at time.Time
	if r.Catchup {
		switch {
		case last != nil:
			at = c.next(last.End)
		case r.Earliest == nil:
			return DagRunInfo{}, false
		default:
			at = c.alignToNext(*r.Earliest)
		}
	} else {
		at = c.alignToPrev(now)
		if last != nil {
			if n := c.next(last.End); n.After(at) {
				at = n
			}
		}
		if r.Earliest != nil {
			if n := c.alignToNext(*r.Earliest); n.After(at) {
				at = n
			}
		}
	}
	if r.Latest != nil && at.After(*r.Latest) {
		return DagRunInfo{}, false
	}
	return DagRunInfo{RunAfter: at, Interval: DataInterval{at.Add(-c.Interval), at}}, true
}

// skipToLatest moves the earliest start to the last complete interval before
// now, so catchup=false creates only the latest run.
func (c *CronTimetable) skipToLatest(earliest *time.Time, now time.Time) time.Time {
	lastStart := c.prev(now)
	nextStart := c.next(lastStart)
	newStart := lastStart
	if nextStart.After(now) {
		newStart = c.prev(lastStart)
	}
	if earliest == nil {
		return newStart
	}
	if e := c.alignToNext(*earliest); e.After(newStart) {
		return e
	}
	return newStart
}

// alignToNext returns t if it is on the schedule, else the next tick.
func (c *CronTimetable) alignToNext(t time.Time) time.Time {
	n := c.next(t)
	if !c.prev(n).Equal(t) {
		return n
	}
	return t
}

// alignToPrev returns t if it is on the schedule, else the previous tick.
func (c *CronTimetable) alignToPrev(t time.Time) time.Time {
	p := c.prev(t)
	if !c.next(p).Equal(t) {
		return p
	}
	return t
}

// next is the first tick strictly after t, following the wall clock of the
// time zone: fixed-time schedules ("0 3 * * *") keep their local time across
// DST; others ("*/5 * * * *") keep their spacing (Airflow's DST fix).
func (c *CronTimetable) next(t time.Time) time.Time {
	naive := wallClock(t, c.Location)
	tick := c.sched.next(naive)
	if !c.fixDST {
		return Localize(tick, c.Location).UTC()
	}
	return t.Add(tick.Sub(naive)).UTC()
}

// prev is the last tick strictly before t (same DST rules as next).
func (c *CronTimetable) prev(t time.Time) time.Time {
	naive := wallClock(t, c.Location)
	tick := c.sched.prev(naive)
	if !c.fixDST {
		return Localize(tick, c.Location).UTC()
	}
	return t.Add(tick.Sub(naive)).UTC()
}

// InferManual: a manual run covers the last complete interval before it
// (cron data intervals), or ends at it (trigger timetables).
func (c *CronTimetable) InferManual(t time.Time) DataInterval {
	if c.Trigger {
		return DataInterval{t.Add(-c.Interval), t}
	}
	end := c.alignToPrev(t)
	return DataInterval{c.prev(end), end}
}

func (c *CronTimetable) Summary() string { return c.summary }
func (c *CronTimetable) Periodic() bool  { return true }

// wallClock returns t's wall-clock time in loc as a UTC time value, the
// "naive datetime" croniter works on.
func wallClock(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// cronPresets are Airflow 2's schedule presets.
var cronPresets = map[string]string{
	"@hourly":    "0 * * * *",
	"@daily":     "0 0 * * *",
	"@weekly":    "0 0 * * 0",
	"@monthly":   "0 0 1 * *",
	"@quarterly": "0 0 1 */3 *",
	"@yearly":    "0 0 1 1 *",
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// NewCronTimetable parses a cron expression or preset for loc.
func NewCronTimetable(expr string, loc *time.Location) (*CronTimetable, error) {
	expr = strings.TrimSpace(expr)
	spec := expr
	if strings.HasPrefix(expr, "@") {
		p, ok := cronPresets[lower(expr)]
		if !ok {
			return nil, fmt.Errorf("unknown schedule preset %q%s", expr, suggest(expr, append(mapKeys(cronPresets), "@once")))
		}
		spec = p
	}
	sched, err := parseCron(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron expression %q: %v", expr, err)
	}
	c := &CronTimetable{Expr: expr, Location: loc, sched: sched, summary: expr}
	// Airflow "peeks" two ticks: if they share hour and minute the schedule
	// has a fixed time of day and follows the wall clock across DST.
	a := sched.next(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	b := sched.next(a)
	c.fixDST = !(a.Hour() == b.Hour() && a.Minute() == b.Minute())
	return c, nil
}
