package dags

import (
	"strings"
	"time"
)

// Restriction returns the DAG's scheduling bounds: its start date (the
// earliest over the DAG and its tasks), end date and catchup setting.
func (d *DAG) Restriction() Restriction {
	return Restriction{Earliest: d.StartDate, Latest: d.EndDate, Catchup: d.Catchup}
}

// NextRun returns the scheduled run that follows the last automated one
// (nil: none yet), honouring start_date, end_date and catchup.
func NextRun(d *DAG, last *DataInterval, now time.Time) (DagRunInfo, bool) {
	return d.Schedule.Next(last, d.Restriction(), now)
}

// Due returns the next scheduled run and whether it may be created at now
// (its data interval has ended).
func Due(d *DAG, last *DataInterval, now time.Time) (DagRunInfo, bool) {
	info, ok := NextRun(d, last, now)
	return info, ok && !info.RunAfter.After(now)
}

// RunsBetween returns up to max scheduled runs whose creation time falls
// in (from, to], oldest first: the runs catchup creates for that span.
func RunsBetween(d *DAG, from, to time.Time, max int) []DagRunInfo {
	r := d.Restriction()
	r.Catchup = true
	var last *DataInterval
	// Start near from instead of walking from start_date.
	if d.StartDate != nil && from.After(*d.StartDate) {
		switch s := d.Schedule.(type) {
		case *CronTimetable:
			if !s.Trigger {
				p := s.prev(s.prev(from))
				if !p.Before(*d.StartDate) {
					last = &DataInterval{End: p}
				}
			} else if p := s.prev(from); p.After(*d.StartDate) {
				last = &DataInterval{End: p}
			}
		case DeltaTimetable:
			k := from.Sub(*d.StartDate) / s.Delta
			if k > 1 {
				end := d.StartDate.Add((k - 1) * s.Delta)
				last = &DataInterval{Start: end.Add(-s.Delta), End: end}
			}
		}
	}
	var out []DagRunInfo
	for len(out) < max {
		info, ok := d.Schedule.Next(last, r, to)
		if !ok || info.RunAfter.After(to) {
			break
		}
		if last != nil && !info.Interval.End.After(last.End) && !info.RunAfter.After(last.End) {
			break // no progress: a timetable that does not advance
		}
		if info.RunAfter.After(from) {
			out = append(out, info)
		}
		iv := info.Interval
		last = &iv
	}
	return out
}

// PreviousRun returns the latest scheduled run created at or before t
// (its data interval ended by t), and false when there is none: before the
// start date, or for schedules without periodic runs.
func PreviousRun(d *DAG, t time.Time) (DagRunInfo, bool) {
	if d.StartDate == nil || t.Before(*d.StartDate) {
		return DagRunInfo{}, false
	}
	var info DagRunInfo
	switch s := d.Schedule.(type) {
	case *CronTimetable:
		end := s.alignToPrev(t)
		if s.Trigger {
			info = DagRunInfo{RunAfter: end, Interval: DataInterval{end.Add(-s.Interval), end}}
		} else {
			info = DagRunInfo{RunAfter: end, Interval: DataInterval{s.prev(end), end}}
		}
		if info.Interval.Start.Before(s.alignToNext(*d.StartDate)) {
			return DagRunInfo{}, false
		}
	case DeltaTimetable:
		k := t.Sub(*d.StartDate) / s.Delta
		if k < 1 {
			return DagRunInfo{}, false
		}
		end := d.StartDate.Add(k * s.Delta)
		info = DagRunInfo{RunAfter: end, Interval: DataInterval{end.Add(-s.Delta), end}}
	case OnceTimetable:
		at := *d.StartDate
		return DagRunInfo{RunAfter: at, Interval: DataInterval{at, at}}, true
	default:
		return DagRunInfo{}, false
	}
	if d.EndDate != nil && info.Interval.Start.After(*d.EndDate) {
		return DagRunInfo{}, false
	}
	return info, true
}

// ScheduledRunAt returns the scheduled run whose logical date is logical,
// and false when logical is not on the DAG's schedule.
func ScheduledRunAt(d *DAG, logical time.Time) (DagRunInfo, bool) {
	switch s := d.Schedule.(type) {
	case *CronTimetable:
		if !s.alignToPrev(logical).Equal(logical) {
			return DagRunInfo{}, false
		}
		if s.Trigger {
			return DagRunInfo{RunAfter: logical.Add(s.Interval), Interval: DataInterval{logical, logical.Add(s.Interval)}}, true
		}
		end := s.next(logical)
		return DagRunInfo{RunAfter: end, Interval: DataInterval{logical, end}}, true
	case DeltaTimetable:
		if d.StartDate != nil && logical.Sub(*d.StartDate)%s.Delta != 0 {
			return DagRunInfo{}, false
		}
		end := logical.Add(s.Delta)
		return DagRunInfo{RunAfter: end, Interval: DataInterval{logical, end}}, true
	case OnceTimetable:
		if d.StartDate != nil && logical.Equal(*d.StartDate) {
			return DagRunInfo{RunAfter: logical, Interval: DataInterval{logical, logical}}, true
		}
	}
	return DagRunInfo{}, false
}

// Run types, as in Airflow.
const (
	RunTypeScheduled = "scheduled"
	RunTypeManual    = "manual"
	RunTypeBackfill  = "backfill"
)

// RunID is Airflow's generated run id: "<type>__<ISO logical date>", e.g.
// "scheduled__2024-01-01T00:00:00+00:00".
func RunID(runType string, logical time.Time) string {
	return runType + "__" + NewDateTime(logical).iso()
}

var runIDChars = func() [256]bool {
	var ok [256]bool
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~:+-" {
		ok[c] = true
	}
	return ok
}()

// ValidRunID reports whether a user-chosen run id matches Airflow's
// ^[A-Za-z0-9_.~:+-]+$.
func ValidRunID(id string) bool {
	if id == "" || len(id) > 250 || strings.TrimSpace(id) != id {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !runIDChars[id[i]] {
			return false
		}
	}
	return true
}
