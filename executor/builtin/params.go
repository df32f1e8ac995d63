package builtin

import (
	"fmt"
	"strconv"
	"strings"
)

// bind prepares one statement and its arguments for the driver. Airflow's
// SQL hooks hand parameters to psycopg2 or Snowflake's Python connector,
// which read placeholders the way Python's % operator does (pyformat):
// %s takes the next value of a list, %(name)s the value of a mapping,
// and %% is a literal %, anywhere in the text. The drivers here take ?
// (Snowflake) or $1, $2... (PostgreSQL), so pyformat placeholders are
// rewritten to those. A statement written with the drivers' own
// placeholders gets the list as it is, and one without any placeholder
// gets no arguments (the same parameters go to every statement of a task).
func bind(q string, list []any, named map[string]any, engine string) (string, []any, error) {
	if list == nil && named == nil {
		return q, nil, nil // no parameters: % means itself, as in Python
	}
	if !hasPyformat(q) {
		if list != nil && hasPlaceholder(q) {
			return q, list, nil
		}
		return q, nil, nil
	}
	var out strings.Builder
	var args []any
	index := map[string]int{} // named parameter -> its $n (PostgreSQL binds a value once)
	next := 0                 // the next value of the list
	placeholder := func(v any, name string) {
		if engine == "postgres" {
			if n, ok := index[name]; ok && name != "" {
				out.WriteString("$" + strconv.Itoa(n))
				return
			}
			args = append(args, v)
			if name != "" {
				index[name] = len(args)
			}
			out.WriteString("$" + strconv.Itoa(len(args)))
			return
		}
		args = append(args, v)
		out.WriteString("?")
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c != '%' {
			out.WriteByte(c)
			continue
		}
		rest := q[i+1:]
		switch {
		case strings.HasPrefix(rest, "%"):
			out.WriteByte('%')
			i++
		case strings.HasPrefix(rest, "s"):
			if list == nil {
				return "", nil, fmt.Errorf("%%s at byte %d takes a value from a list of parameters, but parameters is a mapping (use %%(name)s)", i)
			}
			if next >= len(list) {
				return "", nil, fmt.Errorf("the statement has more %%s placeholders than parameters has values (%d)", len(list))
			}
			placeholder(list[next], "")
			next++
			i++
		case strings.HasPrefix(rest, "("):
			end := strings.Index(rest, ")s")
			if end < 0 {
				return "", nil, fmt.Errorf("%%( at byte %d is not closed by )s; write %%%% for a literal %%", i)
			}
			name := rest[1:end]
			if named == nil {
				return "", nil, fmt.Errorf("%%(%s)s names a parameter, but parameters is a list (use %%s)", name)
			}
			v, ok := named[name]
			if !ok {
				return "", nil, fmt.Errorf("%%(%s)s: parameters has no %q", name, name)
			}
			placeholder(v, name)
			i += end + 2
		default:
			return "", nil, fmt.Errorf("%% at byte %d is not %%s, %%(name)s or %%%% (with parameters, a literal %% is written %%%%, as in Airflow)", i)
		}
	}
	if list != nil && next < len(list) {
		return "", nil, fmt.Errorf("parameters has %d values but the statement takes %d", len(list), next)
	}
	return out.String(), args, nil
}

// hasPyformat reports whether q has a %s or %(name)s placeholder.
func hasPyformat(q string) bool {
	for i := 0; i+1 < len(q); i++ {
		if q[i] != '%' {
			continue
		}
		switch q[i+1] {
		case '%':
			i++
		case 's', '(':
			return true
		}
	}
	return false
}
