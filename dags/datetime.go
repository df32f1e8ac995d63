package dags

import (
	"fmt"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// DateTime is a point in time as templates see it: it prints like Python's
// str() of an aware datetime ("2024-01-02T00:00:00+00:00", pendulum 2 style)
// and has the methods DAG files call (strftime, isoformat, add, ...).
type DateTime struct{ t time.Time }

// NewDateTime wraps t for templates, in UTC like Airflow's context values.
func NewDateTime(t time.Time) DateTime { return DateTime{t.UTC()} }

// Time returns the wrapped time.
func (d DateTime) Time() time.Time { return d.t }

func (d DateTime) String() string { return d.iso() }

func (d DateTime) iso() string {
	if d.t.Nanosecond() != 0 {
		return d.t.Format("2006-01-02T15:04:05.000000-07:00")
	}
	return d.t.Format("2006-01-02T15:04:05-07:00")
}

// GetAttribute exposes the datetime's fields and methods to templates.
func (d DateTime) GetAttribute(name string) (*exec.Value, bool) {
	t := d.t
	var v any
	switch name {
	case "year":
		v = t.Year()
	case "month":
		v = int(t.Month())
	case "day":
		v = t.Day()
	case "hour":
		v = t.Hour()
	case "minute":
		v = t.Minute()
	case "second":
		v = t.Second()
	case "microsecond":
		v = t.Nanosecond() / 1000
	case "strftime", "format":
		v = func(va *exec.VarArgs) (any, error) {
			if len(va.Args) != 1 {
				return nil, fmt.Errorf("%s(format) takes 1 argument", name)
			}
			return Strftime(t, va.Args[0].String()), nil
		}
	case "isoformat":
		v = func(*exec.VarArgs) (any, error) { return d.iso(), nil }
	case "weekday": // Python: Monday is 0
		v = func(*exec.VarArgs) (any, error) { return (int(t.Weekday()) + 6) % 7, nil }
	case "isoweekday": // Monday is 1
		v = func(*exec.VarArgs) (any, error) { return (int(t.Weekday())+6)%7 + 1, nil }
	case "day_of_week": // pendulum 3: Monday is 0
		v = (int(t.Weekday()) + 6) % 7
	case "timestamp":
		v = func(*exec.VarArgs) (any, error) { return float64(t.UnixNano()) / 1e9, nil }
	case "date", "to_date_string":
		v = func(*exec.VarArgs) (any, error) { return t.Format("2006-01-02"), nil }
	case "to_datetime_string":
		v = func(*exec.VarArgs) (any, error) { return t.Format("2006-01-02 15:04:05"), nil }
	case "in_timezone", "in_tz":
		v = func(va *exec.VarArgs) (any, error) {
			if len(va.Args) != 1 {
				return nil, fmt.Errorf("in_timezone(name) takes 1 argument")
			}
			loc, err := time.LoadLocation(va.Args[0].String())
			if err != nil {
				return nil, fmt.Errorf("unknown time zone %q", va.Args[0].String())
			}
			return DateTime{t.In(loc)}, nil
		}
	case "add", "subtract":
		v = func(va *exec.VarArgs) (any, error) {
			sign := 1
			if name == "subtract" {
				sign = -1
			}
			out := t
			for unit, n := range va.KwArgs {
				if !n.IsNumber() {
					return nil, fmt.Errorf("%s: %s must be a number", name, unit)
				}
				k := sign * n.Integer()
				switch unit {
				case "years":
					out = out.AddDate(k, 0, 0)
				case "months":
					out = out.AddDate(0, k, 0)
				case "weeks":
					out = out.AddDate(0, 0, 7*k)
				case "days":
					out = out.AddDate(0, 0, k)
				case "hours", "minutes", "seconds":
					out = out.Add(time.Duration(k) * timedeltaUnits[unit])
				default:
					return nil, fmt.Errorf("%s: unknown unit %q", name, unit)
				}
			}
			return DateTime{out}, nil
		}
	default:
		return exec.AsValue(nil), false
	}
	return exec.AsValue(v), true
}

// Strftime formats t with a Python strftime format.
func Strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			h := t.Hour() % 12
			if h == 0 {
				h = 12
			}
			fmt.Fprintf(&b, "%02d", h)
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'w':
			fmt.Fprintf(&b, "%d", int(t.Weekday()))
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			fmt.Fprintf(&b, "%d", wd)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 's':
			fmt.Fprintf(&b, "%d", t.Unix())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}

// goLayout converts a Python strptime format to a Go time layout.
func goLayout(format string) (string, error) {
	repl := map[byte]string{
		'Y': "2006", 'y': "06", 'm': "01", 'd': "02", 'H': "15", 'I': "03", 'p': "PM", 'M': "04",
		'S': "05", 'b': "Jan", 'B': "January", 'a': "Mon", 'A': "Monday", 'z': "-0700", 'Z': "MST",
		'j': "002", 'F': "2006-01-02", 'T': "15:04:05",
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		if format[i] == '%' {
			b.WriteByte('%')
			continue
		}
		l, ok := repl[format[i]]
		if !ok {
			return "", fmt.Errorf("unsupported format directive %%%c", format[i])
		}
		b.WriteString(l)
	}
	return b.String(), nil
}
