package dags

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Describe says in words when a timetable runs, for people: "At 03:00",
// "Every 5 minutes", "At 06:30, Monday through Friday". Expressions it has
// no words for are returned as written, never guessed at.
func Describe(tt Timetable) string {
	switch t := tt.(type) {
	case nil, NullTimetable:
		return "Never, only when triggered"
	case OnceTimetable:
		return "Once, at the start date"
	case DeltaTimetable:
		return "Every " + words(t.Delta)
	case *CronTimetable:
		d := describeCron(t.Expr)
		if t.Location != nil && t.Location != time.UTC && t.Location.String() != "UTC" {
			d += " (" + t.Location.String() + ")"
		}
		return d
	}
	return tt.Summary()
}

var presetWords = map[string]string{
	"@hourly": "At the start of every hour", "@daily": "At 00:00", "@midnight": "At 00:00",
	"@weekly": "At 00:00, only on Sunday", "@monthly": "At 00:00, on day 1 of the month",
	"@quarterly": "At 00:00, on day 1 of January, April, July and October",
	"@yearly":    "At 00:00, on 1 January", "@annually": "At 00:00, on 1 January", "@continuous": "Continuously",
}

var weekdays = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

var months = []string{"", "January", "February", "March", "April", "May", "June", "July", "August",
	"September", "October", "November", "December"}

func describeCron(expr string) string {
	if w, ok := presetWords[expr]; ok {
		return w
	}
	f := strings.Fields(expr)
	if len(f) != 5 {
		return expr
	}
	minute, hour, dom, month, dow := f[0], f[1], f[2], f[3], f[4]
	var when string
	switch {
	case minute == "*" && hour == "*":
		when = "Every minute"
	case strings.HasPrefix(minute, "*/") && hour == "*":
		when = "Every " + minute[2:] + " minutes"
	case isNum(minute) && hour == "*":
		when = "At minute " + minute + " past every hour"
	case isNum(minute) && strings.HasPrefix(hour, "*/"):
		when = "At minute " + minute + " past every " + hour[2:] + " hours"
	case isNum(minute) && isNum(hour):
		h, _ := strconv.Atoi(hour)
		m, _ := strconv.Atoi(minute)
		when = fmt.Sprintf("At %02d:%02d", h, m)
	case isNum(minute) && isList(hour):
		var times []string
		m, _ := strconv.Atoi(minute)
		for _, h := range strings.Split(hour, ",") {
			n, _ := strconv.Atoi(h)
			times = append(times, fmt.Sprintf("%02d:%02d", n, m))
		}
		when = "At " + joinWords(times)
	default:
		return expr
	}
	var parts []string
	if dom != "*" {
		if !isList(dom) {
			return expr
		}
		parts = append(parts, "on day "+joinWords(strings.Split(dom, ","))+" of the month")
	}
	if month != "*" {
		names, ok := names(month, months, 1)
		if !ok {
			return expr
		}
		parts = append(parts, "only in "+names)
	}
	if dow != "*" {
		switch {
		case dow == "1-5" || strings.EqualFold(dow, "MON-FRI"):
			parts = append(parts, "Monday through Friday")
		default:
			names, ok := names(dow, weekdays, 0)
			if !ok {
				return expr
			}
			parts = append(parts, "only on "+names)
		}
	}
	if len(parts) == 0 {
		return when
	}
	return when + ", " + strings.Join(parts, ", ")
}

func isNum(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

func isList(s string) bool {
	for _, p := range strings.Split(s, ",") {
		if !isNum(p) {
			return false
		}
	}
	return true
}

// names turns a list of numbers or three-letter names into words.
func names(field string, table []string, base int) (string, bool) {
	var out []string
	for _, p := range strings.Split(field, ",") {
		if n, err := strconv.Atoi(p); err == nil {
			if n == 7 && len(table) == 7 {
				n = 0 // Sunday as 7
			}
			if n < base || n >= len(table) {
				return "", false
			}
			out = append(out, table[n])
			continue
		}
		found := false
		for _, name := range table {
			if name != "" && strings.EqualFold(name[:3], p) {
				out = append(out, name)
				found = true
			}
		}
		if !found {
			return "", false
		}
	}
	return joinWords(out), true
}

func joinWords(w []string) string {
	switch len(w) {
	case 0:
		return ""
	case 1:
		return w[0]
	}
	return strings.Join(w[:len(w)-1], ", ") + " and " + w[len(w)-1]
}

// words says a duration the way people do: "5 minutes", "1 day", "1 hour 30 minutes".
func words(d time.Duration) string {
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	var out []string
	for _, u := range units {
		if n := int64(d / u.d); n > 0 {
			name := u.name
			if n > 1 {
				name += "s"
			}
			out = append(out, fmt.Sprintf("%d %s", n, name))
			d -= time.Duration(n) * u.d
		}
	}
	if len(out) == 0 {
		return d.String()
	}
	return strings.Join(out, " ")
}
