package dags

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var errDatasets = errors.New("data-aware scheduling (datasets/assets) is not supported yet; use a cron schedule, or trigger the DAG through the API")

// ParseScheduleYAML parses a schedule written as YAML (the value of a
// schedule: key) into a timetable for loc. It exists for tools and tests
// that hold schedule fragments rather than whole DAG files.
func ParseScheduleYAML(data []byte, loc *time.Location) (Timetable, error) {
	v, p := parseYAML("schedule", data, DefaultLimits)
	if p != nil {
		return nil, errors.New(p.Msg)
	}
	if s := v.get("schedule"); v.kind == kindMap && s != nil {
		v = s
	}
	return parseSchedule("schedule", v, loc)
}

// parseSchedule resolves every schedule form dag-factory accepts to an
// Airflow 2.x timetable: None, cron strings and presets, @once, timedelta
// and relativedelta objects, and the cron timetable classes.
func parseSchedule(key string, v *val, loc *time.Location) (Timetable, error) {
	if v.isNull() {
		return NullTimetable{}, nil
	}
	switch v.kind {
	case kindSeq:
		return nil, errDatasets
	case kindMap:
		return parseTimetableObject(key, v, loc)
	}
	s := strings.TrimSpace(v.str)
	switch lower(s) {
	case "none", "":
		return NullTimetable{}, nil
	case "@once":
		return OnceTimetable{}, nil
	case "@continuous":
		return nil, fmt.Errorf("%s: @continuous is not supported yet; use a frequent cron schedule with max_active_runs: 1", key)
	}
	if v.tag == "!!int" || v.tag == "!!float" {
		return nil, fmt.Errorf("%s: %s is not a schedule; use a cron expression, a preset such as @daily, or a datetime.timedelta", key, s)
	}
	c, err := NewCronTimetable(s, loc)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key, err)
	}
	return c, nil
}

func parseTimetableObject(key string, v *val, loc *time.Location) (Timetable, error) {
	if v.get("datasets") != nil || v.get("file") != nil || v.get("__and__") != nil || v.get("__or__") != nil {
		return nil, errDatasets
	}
	typ := v.get("__type__")
	if typ == nil {
		return nil, fmt.Errorf("%s: expected a cron expression, a preset, None or a __type__ object, got a mapping", key)
	}
	var probs Problems
	r := report{probs: &probs}
	firstErr := func() error {
		if len(probs) > 0 {
			return errors.New(probs[0].Msg)
		}
		return nil
	}
	class := typ.str
	short := class[strings.LastIndex(class, ".")+1:]
	arg := func(name string, pos int) *val {
		if a := v.get(name); a != nil {
			return a
		}
		if args := v.get("__args__"); args != nil && args.kind == kindSeq && pos < len(args.items) {
			return args.items[pos]
		}
		return nil
	}
	zone := func() (*time.Location, error) {
		if z := arg("timezone", 1); z != nil && !z.isNull() {
			l, ok := r.location(key+".timezone", z)
			if !ok {
				return nil, firstErr()
			}
			return l, nil
		}
		return loc, nil
	}
	switch {
	case class == "datetime.timedelta":
		d, ok := r.timedelta(key, v)
		if !ok {
			return nil, firstErr()
		}
		if d <= 0 {
			return nil, fmt.Errorf("%s: a timedelta schedule must be positive", key)
		}
		return DeltaTimetable{Delta: d}, nil
	case class == "dateutil.relativedelta.relativedelta":
		return relativeDeltaSchedule(key, v)
	case short == "CronTriggerTimetable" || short == "CronDataIntervalTimetable":
		expr := arg("cron", 0)
		if expr == nil || expr.kind != kindScalar {
			return nil, fmt.Errorf("%s: %s needs a cron expression (cron: or the first __args__ item)", key, short)
		}
		l, err := zone()
		if err != nil {
			return nil, err
		}
		c, err := NewCronTimetable(expr.str, l)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", key, err)
		}
		if short == "CronTriggerTimetable" {
			c.Trigger = true
			if iv := v.get("interval"); iv != nil {
				if c.Interval, _ = r.duration(key+".interval", iv); firstErr() != nil {
					return nil, firstErr()
				}
			}
		}
		return c, nil
	case short == "DeltaDataIntervalTimetable":
		a := arg("delta", 0)
		if a == nil {
			return nil, fmt.Errorf("%s: DeltaDataIntervalTimetable needs a delta", key)
		}
		d, ok := r.duration(key, a)
		if !ok {
			return nil, firstErr()
		}
		return DeltaTimetable{Delta: d}, nil
	case short == "NullTimetable":
		return NullTimetable{}, nil
	case short == "OnceTimetable":
		return OnceTimetable{}, nil
	case class == "builtins.list", strings.Contains(class, "Dataset"), strings.Contains(class, "Asset"):
		return nil, errDatasets
	}
	return nil, fmt.Errorf("%s: timetable class %s needs a Python runtime; use a cron expression, a preset or a datetime.timedelta", key, class)
}

// relativeDeltaSchedule accepts relativedelta schedules made of relative
// fields that are fixed durations (weeks, days, hours, minutes, seconds).
// Months and years vary in length and absolute fields (hour=18) replace
// instead of advance; both are refused with the cron equivalent to use.
func relativeDeltaSchedule(key string, v *val) (Timetable, error) {
	var d time.Duration
	for i, k := range v.keys {
		if k.str == "__type__" {
			continue
		}
		value := v.vals[i]
		switch k.str {
		case "weeks", "days", "hours", "minutes", "seconds", "microseconds":
			var probs Problems
			n, ok := report{probs: &probs}.integer(k.str, value)
			if !ok {
				return nil, errors.New(probs[0].Msg)
			}
			d += time.Duration(n) * timedeltaUnits[k.str]
		case "months", "years":
			return nil, fmt.Errorf("%s: relativedelta(%s=%s) has no fixed length; use a cron schedule such as \"0 0 1 * *\" (monthly) or \"0 0 1 1 *\" (yearly)", key, k.str, value.str)
		case "year", "month", "day", "hour", "minute", "second", "weekday":
			return nil, fmt.Errorf("%s: relativedelta(%s=%s) sets a time instead of advancing it, so it is not an interval; use a cron schedule instead (for hour=18: \"0 18 * * *\")", key, k.str, value.str)
		default:
			return nil, fmt.Errorf("%s: unknown relativedelta argument %q", key, k.str)
		}
	}
	if d <= 0 {
		return nil, fmt.Errorf("%s: a relativedelta schedule must be positive", key)
	}
	return DeltaTimetable{Delta: d}, nil
}
