package dags

import (
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func ptr(t time.Time) *time.Time { return &t }

func mustCron(t *testing.T, expr, zone string) *CronTimetable {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCronTimetable(expr, loc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// walk returns the first n runs a timetable creates from scratch.
func walk(tt Timetable, r Restriction, now time.Time, n int) []DagRunInfo {
	var out []DagRunInfo
	var last *DataInterval
	for len(out) < n {
		info, ok := tt.Next(last, r, now)
		if !ok {
			break
		}
		out = append(out, info)
		iv := info.Interval
		last = &iv
	}
	return out
}

func fmtRun(i DagRunInfo) string {
	return i.Interval.Start.Format(time.RFC3339) + "/" + i.Interval.End.Format(time.RFC3339) + "@" + i.RunAfter.Format(time.RFC3339)
}

func checkRuns(t *testing.T, got []DagRunInfo, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		var s []string
		for _, g := range got {
			s = append(s, fmtRun(g))
		}
		t.Fatalf("got %d runs %v, want %d %v", len(got), s, len(want), want)
	}
	for i := range want {
		if fmtRun(got[i]) != want[i] {
			t.Errorf("run %d = %s, want %s", i, fmtRun(got[i]), want[i])
		}
	}
}

// A scheduled run covers [start, end) and is created when it ends: the run
// created at 2024-01-02 03:00 has logical date 2024-01-01 03:00.
func TestCronDataIntervalsWithCatchup(t *testing.T) {
	c := mustCron(t, "0 3 * * *", "UTC")
	r := Restriction{Earliest: ptr(utc("2024-01-01T00:00:00Z")), Catchup: true}
	checkRuns(t, walk(c, r, utc("2030-01-01T00:00:00Z"), 3),
		"2024-01-01T03:00:00Z/2024-01-02T03:00:00Z@2024-01-02T03:00:00Z",
		"2024-01-02T03:00:00Z/2024-01-03T03:00:00Z@2024-01-03T03:00:00Z",
		"2024-01-03T03:00:00Z/2024-01-04T03:00:00Z@2024-01-04T03:00:00Z")
}

func TestCronNoCatchupRunsOnlyTheLatestInterval(t *testing.T) {
	c := mustCron(t, "0 3 * * *", "UTC")
	r := Restriction{Earliest: ptr(utc("2019-01-01T00:00:00Z")), Catchup: false}
	checkRuns(t, walk(c, r, utc("2024-03-10T12:00:00Z"), 1),
		"2024-03-09T03:00:00Z/2024-03-10T03:00:00Z@2024-03-10T03:00:00Z")
	// On a boundary: the interval that ends now.
	checkRuns(t, walk(c, r, utc("2024-03-10T03:00:00Z"), 1),
		"2024-03-09T03:00:00Z/2024-03-10T03:00:00Z@2024-03-10T03:00:00Z")
	// After a pause, a previous run far back: still only the latest.
	last := &DataInterval{utc("2020-01-01T03:00:00Z"), utc("2020-01-02T03:00:00Z")}
	info, _ := c.Next(last, r, utc("2024-03-10T12:00:00Z"))
	checkRuns(t, []DagRunInfo{info}, "2024-03-09T03:00:00Z/2024-03-10T03:00:00Z@2024-03-10T03:00:00Z")
	// A start date in the future wins.
	r.Earliest = ptr(utc("2025-06-01T00:00:00Z"))
	checkRuns(t, walk(c, r, utc("2024-03-10T12:00:00Z"), 1),
		"2025-06-01T03:00:00Z/2025-06-02T03:00:00Z@2025-06-02T03:00:00Z")
}

func TestEndDateStopsScheduling(t *testing.T) {
	c := mustCron(t, "0 3 * * *", "UTC")
	r := Restriction{Earliest: ptr(utc("2024-01-01T00:00:00Z")), Latest: ptr(utc("2024-01-03T00:00:00Z")), Catchup: true}
	checkRuns(t, walk(c, r, utc("2030-01-01T00:00:00Z"), 10),
		"2024-01-01T03:00:00Z/2024-01-02T03:00:00Z@2024-01-02T03:00:00Z",
		"2024-01-02T03:00:00Z/2024-01-03T03:00:00Z@2024-01-03T03:00:00Z")
}

// Cron follows the DAG's wall clock: midnight in New York is 04:00 UTC in
// summer and 05:00 in winter, so the interval across the change is 25 h.
func TestCronFollowsWallClockAcrossDST(t *testing.T) {
	c := mustCron(t, "0 0 * * *", "America/New_York")
	r := Restriction{Earliest: ptr(utc("2024-11-02T04:00:00Z")), Catchup: true}
	checkRuns(t, walk(c, r, utc("2030-01-01T00:00:00Z"), 2),
		"2024-11-02T04:00:00Z/2024-11-03T04:00:00Z@2024-11-03T04:00:00Z",
		"2024-11-03T04:00:00Z/2024-11-04T05:00:00Z@2024-11-04T05:00:00Z")
	r.Earliest = ptr(utc("2024-03-09T05:00:00Z"))
	checkRuns(t, walk(c, r, utc("2030-01-01T00:00:00Z"), 2),
		"2024-03-09T05:00:00Z/2024-03-10T05:00:00Z@2024-03-10T05:00:00Z",
		"2024-03-10T05:00:00Z/2024-03-11T04:00:00Z@2024-03-11T04:00:00Z")
}

// Schedules without a fixed time of day keep their spacing across DST
// (Airflow's DST fix): hourly stays hourly through the repeated hour.
func TestHourlyKeepsSpacingAcrossDST(t *testing.T) {
	c := mustCron(t, "0 * * * *", "America/New_York")
	r := Restriction{Earliest: ptr(utc("2024-11-03T04:00:00Z")), Catchup: true}
	runs := walk(c, r, utc("2030-01-01T00:00:00Z"), 5)
	for i, run := range runs {
		if d := run.Interval.End.Sub(run.Interval.Start); d != time.Hour {
			t.Errorf("interval %d is %v long: %s", i, d, fmtRun(run))
		}
	}
	if got := runs[4].Interval.End; !got.Equal(utc("2024-11-03T09:00:00Z")) {
		t.Errorf("5th interval ends %v", got)
	}
}

// Fixed-time schedules in a DST gap move forward by the gap; in the
// repeated hour they take its second occurrence (Airflow's fold=1).
func TestCronGapAndRepeatedHour(t *testing.T) {
	c := mustCron(t, "30 2 * * *", "America/New_York")
	if got := c.next(utc("2024-03-09T08:00:00Z")); !got.Equal(utc("2024-03-10T07:30:00Z")) {
		t.Errorf("02:30 on the spring-forward day = %v, want 03:30 EDT (07:30Z)", got)
	}
	c = mustCron(t, "30 1 * * *", "America/New_York")
	if got := c.next(utc("2024-11-02T12:00:00Z")); !got.Equal(utc("2024-11-03T06:30:00Z")) {
		t.Errorf("01:30 on the fall-back day = %v, want the second 01:30 (06:30Z)", got)
	}
	c = mustCron(t, "0 2 * * *", "Europe/Paris")
	if got := c.next(utc("2024-03-30T12:00:00Z")); !got.Equal(utc("2024-03-31T01:00:00Z")) {
		t.Errorf("02:00 Paris on 2024-03-31 = %v, want 03:00 CEST (01:00Z)", got)
	}
}

func TestDeltaTimetable(t *testing.T) {
	d := DeltaTimetable{Delta: 6 * time.Hour}
	r := Restriction{Earliest: ptr(utc("2024-01-01T00:00:00Z")), Catchup: true}
	checkRuns(t, walk(d, r, utc("2030-01-01T00:00:00Z"), 2),
		"2024-01-01T00:00:00Z/2024-01-01T06:00:00Z@2024-01-01T06:00:00Z",
		"2024-01-01T06:00:00Z/2024-01-01T12:00:00Z@2024-01-01T12:00:00Z")
	// Without catchup: [now - delta, now), not aligned to the start date.
	r.Catchup = false
	checkRuns(t, walk(d, r, utc("2024-01-05T10:17:00Z"), 1),
		"2024-01-05T04:17:00Z/2024-01-05T10:17:00Z@2024-01-05T10:17:00Z")
	eq(t, "summary", d.Summary(), "6:00:00")
	eq(t, "day summary", PyTimedelta(36*time.Hour), "1 day, 12:00:00")
}

func TestOnceAndNone(t *testing.T) {
	r := Restriction{Earliest: ptr(utc("2024-01-01T00:00:00Z")), Catchup: true}
	checkRuns(t, walk(OnceTimetable{}, r, utc("2030-01-01T00:00:00Z"), 5),
		"2024-01-01T00:00:00Z/2024-01-01T00:00:00Z@2024-01-01T00:00:00Z")
	checkRuns(t, walk(NullTimetable{}, r, utc("2030-01-01T00:00:00Z"), 5))
	iv := NullTimetable{}.InferManual(utc("2024-05-05T10:00:00Z"))
	eq(t, "manual interval of None", iv.Start.Equal(iv.End), true)
}

func TestCronTriggerTimetable(t *testing.T) {
	c := mustCron(t, "0 1 * * 3", "UTC")
	c.Trigger = true
	r := Restriction{Earliest: ptr(utc("2024-01-01T00:00:00Z")), Catchup: true}
	checkRuns(t, walk(c, r, utc("2030-01-01T00:00:00Z"), 2),
		"2024-01-03T01:00:00Z/2024-01-03T01:00:00Z@2024-01-03T01:00:00Z",
		"2024-01-10T01:00:00Z/2024-01-10T01:00:00Z@2024-01-10T01:00:00Z")
	r.Catchup = false
	checkRuns(t, walk(c, r, utc("2024-03-01T00:00:00Z"), 1),
		"2024-02-28T01:00:00Z/2024-02-28T01:00:00Z@2024-02-28T01:00:00Z")
}

// A manual run covers the last complete interval before it.
func TestManualDataIntervals(t *testing.T) {
	c := mustCron(t, "0 0 * * *", "UTC")
	iv := c.InferManual(utc("2024-01-25T01:00:00Z"))
	eq(t, "cron manual", iv.Start.Format(time.RFC3339)+"/"+iv.End.Format(time.RFC3339), "2024-01-24T00:00:00Z/2024-01-25T00:00:00Z")
	iv = DeltaTimetable{Delta: time.Hour}.InferManual(utc("2024-01-25T01:30:00Z"))
	eq(t, "delta manual", iv.Start.Format(time.RFC3339), "2024-01-25T00:30:00Z")
}

func TestCronSyntax(t *testing.T) {
	c := mustCron(t, "0 9 * * MON#1", "UTC")
	eq(t, "first Monday", c.next(utc("2024-01-01T00:00:00Z")).Format(time.RFC3339), "2024-01-01T09:00:00Z")
	eq(t, "next first Monday", c.next(utc("2024-01-01T09:00:00Z")).Format(time.RFC3339), "2024-02-05T09:00:00Z")
	eq(t, "prev first Monday", c.prev(utc("2024-02-05T09:00:00Z")).Format(time.RFC3339), "2024-01-01T09:00:00Z")
	c = mustCron(t, "0 2 * * WED,SAT", "UTC")
	eq(t, "weekday names", c.next(utc("2024-01-01T00:00:00Z")).Format(time.RFC3339), "2024-01-03T02:00:00Z")
	c = mustCron(t, "@quarterly", "UTC")
	eq(t, "quarterly", c.next(utc("2024-01-01T00:00:00Z")).Format(time.RFC3339), "2024-04-01T00:00:00Z")
	c = mustCron(t, "0 0 29 2 *", "UTC")
	eq(t, "leap day prev", c.prev(utc("2027-01-01T00:00:00Z")).Format(time.RFC3339), "2024-02-29T00:00:00Z")
	for _, bad := range []string{"", "* * * *", "61 * * * *", "0 0 L * *", "0 0 * * MON#6", "@every 5m", "0 0 31 2 *"} {
		if _, err := NewCronTimetable(bad, time.UTC); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRunsBetweenAndDue(t *testing.T) {
	c := mustCron(t, "*/5 * * * *", "UTC")
	d := &DAG{Schedule: c, StartDate: ptr(utc("2019-01-01T00:00:00Z")), Catchup: true}
	runs := RunsBetween(d, utc("2024-06-01T00:00:00Z"), utc("2024-06-01T01:00:00Z"), 100)
	eq(t, "five-minute runs in an hour", len(runs), 12)
	eq(t, "first", fmtRun(runs[0]), "2024-06-01T00:00:00Z/2024-06-01T00:05:00Z@2024-06-01T00:05:00Z")
	info, due := Due(d, &runs[11].Interval, utc("2024-06-01T01:04:59Z"))
	eq(t, "not due before its interval ends", due, false)
	eq(t, "next run after", info.RunAfter.Format(time.RFC3339), "2024-06-01T01:05:00Z")
	_, due = Due(d, &runs[11].Interval, utc("2024-06-01T01:05:00Z"))
	eq(t, "due when it ends", due, true)
	at, ok := ScheduledRunAt(d, utc("2024-06-01T00:10:00Z"))
	eq(t, "scheduled run at", ok && at.Interval.End.Equal(utc("2024-06-01T00:15:00Z")), true)
	_, ok = ScheduledRunAt(d, utc("2024-06-01T00:11:00Z"))
	eq(t, "off-schedule logical date", ok, false)
	eq(t, "run id", RunID(RunTypeScheduled, utc("2024-01-01T00:00:00Z")), "scheduled__2024-01-01T00:00:00+00:00")
	eq(t, "valid run id", ValidRunID("manual__2024-01-01T00:00:00+00:00"), true)
	eq(t, "invalid run id", ValidRunID("a b"), false)
}

func TestPreviousRun(t *testing.T) {
	c := mustCron(t, "0 3 * * *", "UTC")
	d := &DAG{Schedule: c, StartDate: ptr(utc("2024-01-01T00:00:00Z"))}
	info, ok := PreviousRun(d, utc("2024-03-10T12:00:00Z"))
	eq(t, "cron previous", ok && fmtRun(info) == "2024-03-09T03:00:00Z/2024-03-10T03:00:00Z@2024-03-10T03:00:00Z", true)
	info, ok = PreviousRun(d, utc("2024-03-10T03:00:00Z"))
	eq(t, "on the boundary", ok && info.RunAfter.Equal(utc("2024-03-10T03:00:00Z")), true)
	_, ok = PreviousRun(d, utc("2024-01-02T02:59:00Z"))
	eq(t, "before the first interval ends", ok, false)
	d = &DAG{Schedule: DeltaTimetable{Delta: 6 * time.Hour}, StartDate: ptr(utc("2024-01-01T00:00:00Z"))}
	info, ok = PreviousRun(d, utc("2024-01-01T13:00:00Z"))
	eq(t, "delta previous", ok && fmtRun(info) == "2024-01-01T06:00:00Z/2024-01-01T12:00:00Z@2024-01-01T12:00:00Z", true)
	d = &DAG{Schedule: NullTimetable{}, StartDate: ptr(utc("2024-01-01T00:00:00Z"))}
	_, ok = PreviousRun(d, utc("2025-01-01T00:00:00Z"))
	eq(t, "None has no previous run", ok, false)
}
