package dags

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronSchedule evaluates a five-field cron expression on naive wall-clock
// times (UTC values standing for local wall clock), as croniter does.
// robfig/cron parses and steps forward; nth-weekday entries ("MON#1", which
// croniter supports and robfig does not) are applied as a filter.
type cronSchedule struct {
	spec *cron.SpecSchedule
	nth  map[time.Weekday][]int // weekday -> allowed occurrences in the month (1..5)
}

func parseCron(expr string) (cronSchedule, error) {
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return cronSchedule{}, fmt.Errorf("expected 5 fields (minute hour day-of-month month day-of-week), got %d", len(fields))
	}
	if strings.ContainsAny(strings.ToUpper(fields[2]), "LW") {
		return cronSchedule{}, fmt.Errorf("day-of-month %q: L and W are not supported", fields[2])
	}
	for _, f := range fields[:4] {
		if strings.Contains(f, "#") {
			return cronSchedule{}, fmt.Errorf("%q: # is only allowed in day-of-week", f)
		}
	}
	var nth map[time.Weekday][]int
	if strings.Contains(fields[4], "#") {
		nth = map[time.Weekday][]int{}
		var days []string
		for _, part := range strings.Split(fields[4], ",") {
			day, n, ok := strings.Cut(part, "#")
			if !ok {
				return cronSchedule{}, fmt.Errorf("day-of-week %q: mixing plain days and day#n is not supported", fields[4])
			}
			k, err := strconv.Atoi(n)
			if err != nil || k < 1 || k > 5 {
				return cronSchedule{}, fmt.Errorf("day-of-week %q: the n of day#n must be 1 to 5", part)
			}
			wd, err := weekdayOf(day)
			if err != nil {
				return cronSchedule{}, err
			}
			nth[wd] = append(nth[wd], k)
			days = append(days, day)
		}
		fields[4] = strings.Join(days, ",")
	}
	s, err := cronParser.Parse(strings.Join(fields, " "))
	if err != nil {
		return cronSchedule{}, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return cronSchedule{}, fmt.Errorf("unsupported expression")
	}
	spec.Location = time.UTC
	cs := cronSchedule{spec: spec, nth: nth}
	// An expression that never fires (e.g. "0 0 31 2 *") is an error, as in croniter.
	if cs.next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return cronSchedule{}, fmt.Errorf("it never matches a date")
	}
	return cs, nil
}

func weekdayOf(s string) (time.Weekday, error) {
	names := []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return time.Weekday(i), nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 7 {
		return 0, fmt.Errorf("unknown day of week %q", s)
	}
	return time.Weekday(n % 7), nil
}

func (c cronSchedule) matchesNth(t time.Time) bool {
	if c.nth == nil {
		return true
	}
	return contains(c.nth[t.Weekday()], (t.Day()-1)/7+1)
}

// next returns the first tick strictly after t, or the zero time if there
// is none within robfig's five-year horizon.
func (c cronSchedule) next(t time.Time) time.Time {
	for i := 0; i < 200; i++ {
		t = c.spec.Next(t)
		if t.IsZero() || c.matchesNth(t) {
			return t
		}
	}
	return time.Time{}
}

// prevWindows are the look-back spans tried by prev, growing until one
// contains a tick; each holds few ticks of any schedule that has none in the
// span before it, so stepping forward through it stays cheap.
var prevWindows = []time.Duration{
	time.Hour, 25 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 9 * 366 * 24 * time.Hour,
}

// prev returns the last tick strictly before t.
func (c cronSchedule) prev(t time.Time) time.Time {
	for _, w := range prevWindows {
		tick := c.next(t.Add(-w).Add(-time.Second))
		if tick.IsZero() || !tick.Before(t) {
			continue
		}
		for {
			n := c.next(tick)
			if n.IsZero() || !n.Before(t) {
				return tick
			}
			tick = n
		}
	}
	return time.Time{}
}
