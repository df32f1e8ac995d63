package dags

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// report collects problems about one DAG (or task) of a file.
type report struct {
	probs *Problems
	dag   string
	task  string
}

func (r report) add(sev Severity, v *val, format string, args ...any) {
	p := Problem{Severity: sev, DAG: r.dag, Task: r.task, Msg: fmt.Sprintf(format, args...)}
	if v != nil {
		p.File, p.Line, p.Col = v.pos()
	}
	*r.probs = append(*r.probs, p)
}

func (r report) errf(v *val, format string, args ...any)  { r.add(SeverityError, v, format, args...) }
func (r report) warnf(v *val, format string, args ...any) { r.add(SeverityWarning, v, format, args...) }

func (r report) forTask(id string) report { r.task = id; return r }

func lower(s string) string { return strings.ToLower(s) }

func trimPrefixFold(s, prefix string) string {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):]
	}
	return s
}

// str reads a plain value as a string. Numbers and booleans are accepted and
// kept as written (YAML "1.0" stays "1.0").
func (r report) str(key string, v *val) (string, bool) {
	if v.isNull() {
		return "", true
	}
	if v.kind != kindScalar {
		r.errf(v, "%s: expected a string, got %s", key, v.describe())
		return "", false
	}
	return v.str, true
}

// strList reads a list of strings; a single string is a one-element list.
func (r report) strList(key string, v *val) ([]string, bool) {
	if v.isNull() {
		return nil, true
	}
	if v.kind == kindScalar {
		return []string{v.str}, true
	}
	if v.kind != kindSeq {
		r.errf(v, "%s: expected a list of strings, got %s", key, v.describe())
		return nil, false
	}
	out := make([]string, 0, len(v.items))
	ok := true
	for _, item := range v.items {
		if item.kind != kindScalar {
			r.errf(item, "%s: expected a string, got %s", key, item.describe())
			ok = false
			continue
		}
		out = append(out, item.str)
	}
	return out, ok
}

// strMap reads a mapping of plain values as strings.
func (r report) strMap(key string, v *val) (map[string]string, bool) {
	if v.isNull() {
		return nil, true
	}
	if v.kind != kindMap {
		r.errf(v, "%s: expected a mapping, got %s", key, v.describe())
		return nil, false
	}
	out := make(map[string]string, len(v.keys))
	ok := true
	for i, k := range v.keys {
		value := v.vals[i]
		if value.kind != kindScalar && !value.isNull() {
			r.errf(value, "%s.%s: expected a string, got %s", key, k.str, value.describe())
			ok = false
			continue
		}
		out[k.str] = value.str
	}
	return out, ok
}

// boolean reads a YAML 1.1 boolean as PyYAML does: true/false, yes/no,
// on/off in any case (dag-factory files rely on "yes"/"no").
func (r report) boolean(key string, v *val) (bool, bool) {
	if v.kind == kindScalar {
		switch lower(v.str) {
		case "true", "yes", "on", "y":
			return true, true
		case "false", "no", "off", "n":
			return false, true
		}
	}
	r.errf(v, "%s: expected true or false, got %s", key, v.describe())
	return false, false
}

// integer reads a whole number.
func (r report) integer(key string, v *val) (int, bool) {
	if v.kind == kindScalar {
		s := strings.ReplaceAll(v.str, "_", "")
		if n, err := strconv.ParseInt(s, 0, 64); err == nil && n >= math.MinInt32 && n <= math.MaxInt32 {
			return int(n), true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) <= math.MaxInt32 {
			return int(f), true
		}
	}
	r.errf(v, "%s: expected a whole number, got %s", key, v.describe())
	return 0, false
}

// nonNegative reads a whole number >= 0.
func (r report) nonNegative(key string, v *val) (int, bool) {
	n, ok := r.integer(key, v)
	if ok && n < 0 {
		r.errf(v, "%s: must not be negative, got %d", key, n)
		return 0, false
	}
	return n, ok
}

var relativeRE = regexp.MustCompile(`(?i)^\s*(\d+)\s*(weeks?|days?|hours?|minutes?|seconds?)\s*$`)

var timedeltaUnits = map[string]time.Duration{
	"weeks": 7 * 24 * time.Hour, "days": 24 * time.Hour, "hours": time.Hour,
	"minutes": time.Minute, "seconds": time.Second, "milliseconds": time.Millisecond,
	"microseconds": time.Microsecond,
}

// duration reads a timedelta: a number of seconds, a relative string such as
// "5 minutes", or a {__type__: datetime.timedelta, ...} mapping.
func (r report) duration(key string, v *val) (time.Duration, bool) {
	switch v.kind {
	case kindScalar:
		if f, err := strconv.ParseFloat(v.str, 64); err == nil {
			if f < 0 || f > 1e9 {
				r.errf(v, "%s: %s seconds is out of range", key, v.str)
				return 0, false
			}
			return time.Duration(f * float64(time.Second)), true
		}
		if d, err := time.ParseDuration(strings.TrimSpace(v.str)); err == nil && d >= 0 {
			return d, true // Go's form: 90m, 8h, 1h30m
		}
		if m := relativeRE.FindStringSubmatch(v.str); m != nil {
			n, _ := strconv.Atoi(m[1])
			unit := lower(m[2])
			if !strings.HasSuffix(unit, "s") {
				unit += "s"
			}
			return time.Duration(n) * timedeltaUnits[unit], true
		}
	case kindMap:
		typ := v.get("__type__")
		if typ != nil && typ.str == "datetime.timedelta" {
			return r.timedelta(key, v)
		}
		if typ != nil {
			r.errf(typ, "%s: expected datetime.timedelta, got __type__ %s", key, typ.str)
			return 0, false
		}
	}
	r.errf(v, "%s: expected a duration (seconds, \"5 minutes\" or a datetime.timedelta), got %s", key, v.describe())
	return 0, false
}

func (r report) timedelta(key string, v *val) (time.Duration, bool) {
	var total float64
	ok := true
	args := v.get("__args__")
	if args != nil {
		// timedelta(days, seconds, microseconds, milliseconds, minutes, hours, weeks)
		order := []string{"days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks"}
		if args.kind != kindSeq || len(args.items) > len(order) {
			r.errf(args, "%s: __args__ of datetime.timedelta must be a list of at most 7 numbers", key)
			return 0, false
		}
		for i, a := range args.items {
			f, err := strconv.ParseFloat(a.str, 64)
			if a.kind != kindScalar || err != nil {
				r.errf(a, "%s: expected a number, got %s", key, a.describe())
				ok = false
				continue
			}
			total += f * float64(timedeltaUnits[order[i]])
		}
	}
	for i, k := range v.keys {
		if k.str == "__type__" || k.str == "__args__" {
			continue
		}
		unit, known := timedeltaUnits[k.str]
		if !known {
			r.errf(k, "%s: unknown datetime.timedelta argument %q%s", key, k.str, suggest(k.str, mapKeys(timedeltaUnits)))
			ok = false
			continue
		}
		f, err := strconv.ParseFloat(v.vals[i].str, 64)
		if v.vals[i].kind != kindScalar || err != nil {
			r.errf(v.vals[i], "%s.%s: expected a number, got %s", key, k.str, v.vals[i].describe())
			ok = false
			continue
		}
		total += f * float64(unit)
	}
	if total < 0 || total > float64(100*365*24*time.Hour) {
		r.errf(v, "%s: duration out of range", key)
		return 0, false
	}
	return time.Duration(total), ok
}

var (
	isoRE   = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$`)
	dateArg = []string{"year", "month", "day", "hour", "minute", "second", "microsecond"}
)

// datetime reads a point in time the ways dag-factory accepts: a YAML date or
// timestamp, an ISO string with or without a zone, a relative "2 days"
// (that many days before today's midnight), or a __type__: datetime.datetime
// mapping. Values without a zone are in loc. now anchors relative dates.
func (r report) datetime(key string, v *val, loc *time.Location, now time.Time) (time.Time, bool) {
	switch v.kind {
	case kindScalar:
		s := strings.TrimSpace(v.str)
		if m := isoRE.FindStringSubmatch(s); m != nil {
			t, err := isoTime(m, loc)
			if err == nil {
				return t, true
			}
			r.errf(v, "%s: invalid date %q: %v", key, s, err)
			return time.Time{}, false
		}
		if m := relativeRE.FindStringSubmatch(s); m != nil {
			d, _ := r.duration(key, v)
			n := now.In(loc)
			midnight := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
			return midnight.Add(-d), true
		}
	case kindMap:
		if typ := v.get("__type__"); typ != nil && typ.str == "datetime.datetime" {
			return r.pyDatetime(key, v, loc)
		}
	}
	r.errf(v, "%s: invalid date %s: use YYYY-MM-DD, an ISO 8601 time, or a relative \"<n> days\"", key, v.describe())
	return time.Time{}, false
}

func isoTime(m []string, loc *time.Location) (time.Time, error) {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	y, mo, d := atoi(m[1]), atoi(m[2]), atoi(m[3])
	h, mi, s := atoi(m[4]), atoi(m[5]), atoi(m[6])
	ns := 0
	if m[7] != "" {
		ns = atoi((m[7] + "000000000")[:9])
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, fmt.Errorf("no such day or time")
	}
	if z := m[8]; z != "" {
		off := 0
		if z != "Z" {
			z = strings.ReplaceAll(z, ":", "")
			off = (atoi(z[1:3])*60 + atoi(z[3:5])) * 60
			if z[0] == '-' {
				off = -off
			}
		}
		return time.Date(y, time.Month(mo), d, h, mi, s, ns, fixedZone(off)), nil
	}
	return Localize(time.Date(y, time.Month(mo), d, h, mi, s, ns, time.UTC), loc), nil
}

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	sign, a := '+', off
	if off < 0 {
		sign, a = '-', -off
	}
	return time.FixedZone(fmt.Sprintf("%c%02d:%02d", sign, a/3600, a%3600/60), off)
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (r report) pyDatetime(key string, v *val, loc *time.Location) (time.Time, bool) {
	parts := map[string]int{"month": 1, "day": 1}
	set := func(name string, a *val) bool {
		n, err := strconv.Atoi(a.str)
		if a.kind != kindScalar || err != nil {
			r.errf(a, "%s: datetime.datetime %s must be a whole number, got %s", key, name, a.describe())
			return false
		}
		parts[name] = n
		return true
	}
	ok := true
	if args := v.get("__args__"); args != nil {
		if args.kind != kindSeq || len(args.items) > len(dateArg) {
			r.errf(args, "%s: __args__ of datetime.datetime must be a list of at most 7 numbers", key)
			return time.Time{}, false
		}
		for i, a := range args.items {
			ok = set(dateArg[i], a) && ok
		}
	}
	for i, k := range v.keys {
		switch k.str {
		case "__type__", "__args__":
		case "tzinfo":
			if l, lok := r.location(key+".tzinfo", v.vals[i]); lok {
				loc = l
			} else {
				ok = false
			}
		default:
			if !contains(dateArg, k.str) {
				r.errf(k, "%s: unknown datetime.datetime argument %q%s", key, k.str, suggest(k.str, dateArg))
				ok = false
				continue
			}
			ok = set(k.str, v.vals[i]) && ok
		}
	}
	if _, has := parts["year"]; !has {
		r.errf(v, "%s: datetime.datetime needs a year", key)
		return time.Time{}, false
	}
	if !ok {
		return time.Time{}, false
	}
	y, mo, d := parts["year"], parts["month"], parts["day"]
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || parts["hour"] > 23 || parts["minute"] > 59 || parts["second"] > 59 {
		r.errf(v, "%s: invalid date: no such day or time", key)
		return time.Time{}, false
	}
	naive := time.Date(y, time.Month(mo), d, parts["hour"], parts["minute"], parts["second"], parts["microsecond"]*1000, time.UTC)
	return Localize(naive, loc), true
}

// location reads an IANA time zone name (or a pendulum/pytz timezone object).
func (r report) location(key string, v *val) (*time.Location, bool) {
	name := v.str
	if v.kind == kindMap {
		if a := v.get("__args__"); a != nil && a.kind == kindSeq && len(a.items) == 1 {
			name = a.items[0].str
		} else if n := v.get("name"); n != nil {
			name = n.str
		}
	} else if v.kind != kindScalar {
		r.errf(v, "%s: expected a time zone name, got %s", key, v.describe())
		return nil, false
	}
	if name == "" {
		r.errf(v, "%s: empty time zone name", key)
		return nil, false
	}
	if strings.EqualFold(name, "utc") || name == "Z" {
		return time.UTC, true
	}
	loc, err := time.LoadLocation(name)
	if err != nil || strings.EqualFold(name, "local") {
		r.errf(v, "%s: unknown time zone %q (use an IANA name such as Europe/Paris)", key, name)
		return nil, false
	}
	return loc, true
}

// Localize interprets the wall-clock time of naive (its fields, whatever its
// location) in loc, the way Airflow's make_aware does with fold=1: an
// ambiguous time (clocks turned back) is its second occurrence, and a time
// in a gap (clocks turned forward) moves forward by the gap.
func Localize(naive time.Time, loc *time.Location) time.Time {
	wall := time.Date(naive.Year(), naive.Month(), naive.Day(), naive.Hour(), naive.Minute(), naive.Second(), naive.Nanosecond(), time.UTC)
	if loc == time.UTC || loc == nil {
		return wall
	}
	_, before := wall.Add(-48 * time.Hour).In(loc).Zone()
	_, after := wall.Add(48 * time.Hour).In(loc).Zone()
	var best time.Time
	found := false
	for _, off := range []int{before, after} {
		u := wall.Add(-time.Duration(off) * time.Second).In(loc)
		if sameWall(u, wall) && (!found || u.After(best)) {
			best, found = u, true
		}
	}
	if found {
		return best
	}
	// In a gap: keep the pre-transition offset, which lands after the gap.
	return wall.Add(-time.Duration(before) * time.Second).In(loc)
}

func sameWall(t, wall time.Time) bool {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	wy, wmo, wd := wall.Date()
	wh, wmi, ws := wall.Clock()
	return y == wy && mo == wmo && d == wd && h == wh && mi == wmi && s == ws
}

func contains[T comparable](list []T, x T) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
