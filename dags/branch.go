package dags

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Branch is what a branching task decided when it ran. Its direct
// downstream tasks not in Follow are skipped; with All, every task
// downstream of it is skipped whatever its trigger rule (Airflow's
// ShortCircuitOperator with ignore_downstream_trigger_rules).
type Branch struct {
	Follow []string `json:"follow"`
	All    bool     `json:"all,omitempty"`
}

// Decider is a rendered spec that has made its decision: Decide returns
// the branch to take (nil: nothing is skipped) and the value the task
// pushes as its XCom return_value.
type Decider interface {
	InProcess
	Decide() (*Branch, any, error)
}

// PythonValue reads a rendered template as Python would read its value:
// True/False/None, numbers, quoted strings, lists and dicts written as
// Python or JSON literals; anything else is the text itself.
func PythonValue(s string) any {
	t := strings.TrimSpace(s)
	switch t {
	case "True", "true":
		return true
	case "False", "false":
		return false
	case "None", "null", "":
		if t == "" {
			return ""
		}
		return nil
	}
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(t, 64); err == nil {
		return f
	}
	if v, ok := pythonLiteral(t); ok {
		return v
	}
	return s
}

// pythonLiteral parses a JSON document, or a Python literal made JSON by
// swapping its quotes and keywords (the repr of a list or dict that a
// template printed).
func pythonLiteral(t string) (any, bool) {
	if t == "" || !strings.ContainsAny(t[:1], `[{("'`) {
		return nil, false
	}
	if v, err := decodeJSON(t); err == nil {
		return v, true
	}
	if strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
		t = "[" + t[1:len(t)-1] + "]"
	}
	if v, err := decodeJSON(pythonToJSON(t)); err == nil {
		return v, true
	}
	return nil, false
}

func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data")
	}
	return JSONNumbers(v), nil
}

var pyKeywordRE = regexp.MustCompile(`\b(True|False|None)\b`)

// pythonToJSON turns a Python repr into JSON: single-quoted strings become
// double-quoted and True/False/None their JSON spellings (outside strings).
func pythonToJSON(s string) string {
	var b strings.Builder
	var word strings.Builder
	flush := func() {
		b.WriteString(pyKeywordRE.ReplaceAllStringFunc(word.String(), func(k string) string {
			return map[string]string{"True": "true", "False": "false", "None": "null"}[k]
		}))
		word.Reset()
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\'' && c != '"' {
			word.WriteByte(c)
			continue
		}
		flush()
		quote := c
		b.WriteByte('"')
		for i++; i < len(s) && s[i] != quote; i++ {
			switch {
			case s[i] == '\\' && i+1 < len(s):
				if s[i+1] == '\'' {
					b.WriteByte('\'')
				} else {
					b.WriteByte('\\')
					b.WriteByte(s[i+1])
				}
				i++
			case s[i] == '"':
				b.WriteString(`\"`)
			default:
				b.WriteByte(s[i])
			}
		}
		b.WriteByte('"')
	}
	flush()
	return b.String()
}

// Truthy is Python's bool() of a value read by PythonValue.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// taskIDList reads a rendered follow_task_ids: a list literal, or ids
// separated by commas or spaces; None or an empty list is no task.
func taskIDList(s string) ([]string, error) {
	switch v := PythonValue(s).(type) {
	case nil:
		return []string{}, nil
	case []any:
		out := []string{}
		for _, e := range v {
			id, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("follow_task_ids: %v is not a task id", e)
			}
			out = append(out, id)
		}
		return out, nil
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }), nil
	default:
		return nil, fmt.Errorf("follow_task_ids: %q is not a task id or a list of them", s)
	}
}

var shortCircuitFields = []string{"condition", "ignore_downstream_trigger_rules", "op_args", "op_kwargs"}

// callArgs are op_args and op_kwargs of the template-driven operators:
// what a Python callable would be given, here rendered and handed to the
// condition's template as op_args and op_kwargs (a mapped instance
// expands over them).
type callArgs struct {
	OpArgs   []any          `json:"op_args,omitempty"`
	OpKwargs map[string]any `json:"op_kwargs,omitempty"`
}

func (c *callArgs) decode(d *taskDecoder) {
	if v := d.take("op_args"); v != nil && !v.isNull() {
		if v.kind != kindSeq {
			d.r.errf(v, "op_args: expected a list, got %s", v.describe())
		} else {
			c.OpArgs, _ = toAny(v).([]any)
		}
	}
	if v := d.take("op_kwargs"); v != nil && !v.isNull() {
		c.OpKwargs = toAnyMap(d.r, "op_kwargs", v)
	}
}

// render renders op_args and op_kwargs and returns a renderer whose
// context has them.
func (c callArgs) render(r *Renderer) (callArgs, *Renderer, error) {
	out := c
	if c.OpArgs != nil {
		v, err := r.tree("op_args", c.OpArgs)
		if err != nil {
			return c, nil, err
		}
		out.OpArgs, _ = v.([]any)
	}
	if c.OpKwargs != nil {
		v, err := r.tree("op_kwargs", c.OpKwargs)
		if err != nil {
			return c, nil, err
		}
		out.OpKwargs, _ = v.(map[string]any)
	}
	args, kwargs := out.OpArgs, out.OpKwargs
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return out, r.with(map[string]any{"op_args": args, "op_kwargs": kwargs}), nil
}

// ShortCircuitSpec is ShortCircuitOperator with its condition written as
// a template (updraft runs no Python callable in the server): when the
// rendered condition is falsy by Python's rules, the tasks downstream are
// skipped.
type ShortCircuitSpec struct {
	Condition                    string `json:"condition"`
	IgnoreDownstreamTriggerRules bool   `json:"ignore_downstream_trigger_rules"`
	callArgs

	at map[string]*val
}

func (ShortCircuitSpec) Kind() string { return "ShortCircuitOperator" }
func (ShortCircuitSpec) inProcess()   {}
func (ShortCircuitSpec) pushesXCom()  {}
func (s ShortCircuitSpec) templates() []templateField {
	return []templateField{{"condition", s.Condition, s.at["condition"]}}
}

// Render renders op_args and op_kwargs, then the condition with them.
func (s ShortCircuitSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	var err error
	if out.callArgs, r, err = s.callArgs.render(r); err != nil {
		return nil, err
	}
	out.Condition, err = r.field("condition", s.Condition)
	return out, err
}

// Decide skips downstream when the condition is falsy.
func (s ShortCircuitSpec) Decide() (*Branch, any, error) {
	v := PythonValue(s.Condition)
	if Truthy(v) {
		return nil, v, nil
	}
	return &Branch{Follow: []string{}, All: s.IgnoreDownstreamTriggerRules}, v, nil
}

func decodeShortCircuit(d *taskDecoder) OperatorSpec {
	if d.hasCallable() {
		return decodePython(d, "ShortCircuitOperator", PythonShortCircuit, false)
	}
	s := ShortCircuitSpec{IgnoreDownstreamTriggerRules: true, at: map[string]*val{}}
	if v := d.take("condition"); v != nil {
		s.Condition, _ = d.r.str("condition", v)
		s.at["condition"] = v
	} else {
		d.r.errf(d.own, "ShortCircuitOperator needs python_callable or condition: a template whose value decides, e.g. "+
			`condition: "{{ (ti.xcom_pull(task_ids='check') | fromjson).new_tables | length > 0 }}"`)
	}
	if v := d.take("ignore_downstream_trigger_rules"); v != nil {
		s.IgnoreDownstreamTriggerRules, _ = d.r.boolean("ignore_downstream_trigger_rules", v)
	}
	s.callArgs.decode(d)
	return s
}

var branchFields = []string{"follow_task_ids", "op_args", "op_kwargs"}

// BranchSpec is updraft's BranchOperator: follow_task_ids is a template
// that renders to the task ids to follow (one id, a list, or ids separated
// by commas); the other direct downstream tasks are skipped. It stands in
// for BranchPythonOperator's callable.
type BranchSpec struct {
	FollowTaskIDs string `json:"follow_task_ids"`
	callArgs

	at map[string]*val
}

func (BranchSpec) Kind() string { return "BranchOperator" }
func (BranchSpec) inProcess()   {}
func (BranchSpec) pushesXCom()  {}
func (s BranchSpec) templates() []templateField {
	return []templateField{{"follow_task_ids", s.FollowTaskIDs, s.at["follow_task_ids"]}}
}

// Render renders op_args and op_kwargs, then follow_task_ids with them.
func (s BranchSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	var err error
	if out.callArgs, r, err = s.callArgs.render(r); err != nil {
		return nil, err
	}
	out.FollowTaskIDs, err = r.field("follow_task_ids", s.FollowTaskIDs)
	return out, err
}

// Decide follows the rendered task ids.
func (s BranchSpec) Decide() (*Branch, any, error) {
	ids, err := taskIDList(s.FollowTaskIDs)
	if err != nil {
		return nil, nil, err
	}
	return &Branch{Follow: ids}, ids, nil
}

func decodeBranch(d *taskDecoder) OperatorSpec {
	s := BranchSpec{at: map[string]*val{}}
	v := d.take("follow_task_ids")
	switch {
	case v == nil:
		d.r.errf(d.own, "BranchOperator needs follow_task_ids: the task id(s) to follow, usually a template")
	case v.kind == kindSeq:
		ids, _ := d.r.strList("follow_task_ids", v)
		b, _ := json.Marshal(ids)
		s.FollowTaskIDs = string(b)
	default:
		s.FollowTaskIDs, _ = d.r.str("follow_task_ids", v)
	}
	s.at["follow_task_ids"] = v
	s.callArgs.decode(d)
	return s
}

// chosenSpec holds what the branch operators that decide from the clock
// (LatestOnly, BranchDayOfWeek, BranchDateTime) worked out at render
// time: the branch and the reason, shown in the rendered fields.
type chosenSpec struct {
	Chosen *Branch `json:"chosen,omitempty"`
	Why    string  `json:"why,omitempty"`
}

// Reason says why the branch was chosen.
func (c chosenSpec) Reason() string { return c.Why }

// LatestOnlySpec is LatestOnlyOperator: downstream tasks run only in the
// latest scheduled run (and in manual runs), as in Airflow.
type LatestOnlySpec struct {
	chosenSpec
}

func (LatestOnlySpec) Kind() string               { return "LatestOnlyOperator" }
func (LatestOnlySpec) inProcess()                 {}
func (LatestOnlySpec) pushesXCom()                {}
func (LatestOnlySpec) templates() []templateField { return nil }
func decodeLatestOnly(*taskDecoder) OperatorSpec  { return LatestOnlySpec{} }

// Render decides: a manual run goes on; a scheduled run goes on when now
// falls within the data interval of the run after it.
func (s LatestOnlySpec) Render(r *Renderer) (OperatorSpec, error) {
	rc := r.rc
	out := s
	if rc.RunType == "manual" || rc.DAG == nil || rc.DAG.Schedule == nil {
		out.Why = "externally triggered run: downstream tasks go on"
		return out, nil
	}
	next, ok := rc.DAG.Schedule.Next(&rc.DataInterval, Restriction{Catchup: true}, r.now())
	if !ok {
		out.Why = "no run follows this one: downstream tasks go on"
		return out, nil
	}
	now := r.now()
	if next.Interval.Start.Before(now) && !now.After(next.Interval.End) {
		out.Why = fmt.Sprintf("latest run (now %s is within %s to %s)", iso(now), iso(next.Interval.Start), iso(next.Interval.End))
		return out, nil
	}
	out.Chosen = &Branch{Follow: []string{}}
	out.Why = fmt.Sprintf("not the latest run (now %s is outside %s to %s): downstream tasks are skipped", iso(now), iso(next.Interval.Start), iso(next.Interval.End))
	return out, nil
}

// Decide returns the decision made at render time.
func (s LatestOnlySpec) Decide() (*Branch, any, error) { return s.Chosen, nil, nil }

func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

var dayOfWeekFields = []string{"follow_task_ids_if_true", "follow_task_ids_if_false", "week_day", "use_task_logical_date", "use_task_execution_day"}

// BranchDayOfWeekSpec is BranchDayOfWeekOperator: follow one list of
// tasks on the given week days, the other list on the rest.
type BranchDayOfWeekSpec struct {
	IfTrue         []string       `json:"follow_task_ids_if_true"`
	IfFalse        []string       `json:"follow_task_ids_if_false"`
	WeekDays       []time.Weekday `json:"week_day"`
	UseLogicalDate bool           `json:"use_task_logical_date"`
	chosenSpec
}

func (BranchDayOfWeekSpec) Kind() string               { return "BranchDayOfWeekOperator" }
func (BranchDayOfWeekSpec) inProcess()                 {}
func (BranchDayOfWeekSpec) pushesXCom()                {}
func (BranchDayOfWeekSpec) templates() []templateField { return nil }

// Render decides from the logical date (use_task_logical_date) or the
// current day in the DAG's time zone, as Airflow does.
func (s BranchDayOfWeekSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	day := r.now().In(r.location())
	what := "today"
	if s.UseLogicalDate {
		day, what = r.rc.LogicalDate.UTC(), "the logical date"
	}
	follow := s.IfFalse
	if slices.Contains(s.WeekDays, day.Weekday()) {
		follow = s.IfTrue
	}
	out.Chosen = &Branch{Follow: follow}
	out.Why = fmt.Sprintf("%s is a %s", what, day.Weekday())
	return out, nil
}

// Decide returns the decision made at render time.
func (s BranchDayOfWeekSpec) Decide() (*Branch, any, error) { return s.Chosen, s.Chosen.Follow, nil }

func decodeDayOfWeek(d *taskDecoder) OperatorSpec {
	s := BranchDayOfWeekSpec{}
	s.IfTrue, s.IfFalse = d.followLists()
	v := d.take("week_day")
	if v == nil {
		d.r.errf(d.own, "BranchDayOfWeekOperator needs week_day")
	} else if names, ok := d.r.strList("week_day", v); ok {
		for _, n := range names {
			wd, ok := parseWeekday(n)
			if !ok {
				d.r.errf(v, "week_day: %q is not a day of the week (Monday ... Sunday)", n)
				continue
			}
			s.WeekDays = append(s.WeekDays, wd)
		}
	}
	for _, key := range []string{"use_task_logical_date", "use_task_execution_day"} {
		if v := d.take(key); v != nil {
			s.UseLogicalDate, _ = d.r.boolean(key, v)
		}
	}
	return s
}

// parseWeekday reads "monday", "Monday", "MON" or "WeekDay.MONDAY".
func parseWeekday(s string) (time.Weekday, bool) {
	s = lower(strings.TrimSpace(trimPrefixFold(s, "WeekDay.")))
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := lower(d.String())
		if s == name || s == name[:3] {
			return d, true
		}
	}
	return 0, false
}

// followLists reads follow_task_ids_if_true and follow_task_ids_if_false.
func (d *taskDecoder) followLists() (ifTrue, ifFalse []string) {
	for _, f := range []struct {
		key string
		dst *[]string
	}{{"follow_task_ids_if_true", &ifTrue}, {"follow_task_ids_if_false", &ifFalse}} {
		v := d.take(f.key)
		if v == nil {
			d.r.errf(d.own, "%s needs %s", d.kind.class, f.key)
			continue
		}
		*f.dst, _ = d.r.strList(f.key, v)
		if *f.dst == nil {
			*f.dst = []string{}
		}
	}
	return ifTrue, ifFalse
}

var dateTimeFields = []string{"follow_task_ids_if_true", "follow_task_ids_if_false", "target_lower", "target_upper", "use_task_logical_date", "use_task_execution_date"}

// BranchDateTimeSpec is BranchDateTimeOperator: follow one list of tasks
// when the time falls between target_lower and target_upper (either may
// be open), the other list otherwise. A bound is a date and time, or a
// time of day ("HH:MM[:SS]") on the same day, in the DAG's time zone.
type BranchDateTimeSpec struct {
	IfTrue         []string `json:"follow_task_ids_if_true"`
	IfFalse        []string `json:"follow_task_ids_if_false"`
	Lower          string   `json:"target_lower,omitempty"`
	Upper          string   `json:"target_upper,omitempty"`
	UseLogicalDate bool     `json:"use_task_logical_date"`
	chosenSpec
}

func (BranchDateTimeSpec) Kind() string               { return "BranchDateTimeOperator" }
func (BranchDateTimeSpec) inProcess()                 {}
func (BranchDateTimeSpec) pushesXCom()                {}
func (BranchDateTimeSpec) templates() []templateField { return nil }

// Render decides, with Airflow's rules: a time-of-day bound is on the
// day of the time compared, and an upper bound before the lower one is on
// the next day.
func (s BranchDateTimeSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	loc := r.location()
	now := r.now().In(loc)
	if s.UseLogicalDate {
		now = r.rc.LogicalDate.In(loc)
	}
	lower, lowerClock, err := boundAt(s.Lower, now, loc)
	if err != nil {
		return nil, fmt.Errorf("target_lower: %w", err)
	}
	upper, upperClock, err := boundAt(s.Upper, now, loc)
	if err != nil {
		return nil, fmt.Errorf("target_upper: %w", err)
	}
	if lowerClock && upperClock && upper.Before(lower) {
		upper = upper.AddDate(0, 0, 1)
	}
	follow, why := s.IfTrue, "within the target"
	switch {
	case !upper.IsZero() && upper.Before(now):
		follow, why = s.IfFalse, "after target_upper "+iso(upper)
	case !lower.IsZero() && lower.After(now):
		follow, why = s.IfFalse, "before target_lower "+iso(lower)
	}
	out.Chosen = &Branch{Follow: follow}
	out.Why = fmt.Sprintf("%s is %s", iso(now), why)
	return out, nil
}

// Decide returns the decision made at render time.
func (s BranchDateTimeSpec) Decide() (*Branch, any, error) { return s.Chosen, s.Chosen.Follow, nil }

var clockRE = regexp.MustCompile(`^(\d{1,2}):(\d{2})(?::(\d{2}))?$`)

// boundAt reads a bound relative to now: zero for "", a time of day on
// now's day (clock true), or a full date and time.
func boundAt(s string, now time.Time, loc *time.Location) (time.Time, bool, error) {
	if s == "" {
		return time.Time{}, false, nil
	}
	if m := clockRE.FindStringSubmatch(s); m != nil {
		h, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		sec, _ := strconv.Atoi(m[3])
		return time.Date(now.Year(), now.Month(), now.Day(), h, mi, sec, 0, loc), true, nil
	}
	m := isoRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, fmt.Errorf("%q is neither HH:MM[:SS] nor an ISO date and time", s)
	}
	t, err := isoTime(m, loc)
	return t, false, err
}

func decodeDateTime(d *taskDecoder) OperatorSpec {
	s := BranchDateTimeSpec{}
	s.IfTrue, s.IfFalse = d.followLists()
	for _, b := range []struct {
		key string
		dst *string
	}{{"target_lower", &s.Lower}, {"target_upper", &s.Upper}} {
		v := d.take(b.key)
		if v.isNull() {
			continue
		}
		if v.kind == kindMap {
			if t, ok := d.r.pyDatetime(b.key, v, d.loc); ok {
				*b.dst = t.Format(time.RFC3339)
			}
			continue
		}
		*b.dst, _ = d.r.str(b.key, v)
		if _, _, err := boundAt(*b.dst, time.Now(), time.UTC); err != nil {
			d.r.errf(v, "%s: %v", b.key, err)
		}
	}
	if s.Lower == "" && s.Upper == "" {
		d.r.errf(d.own, "BranchDateTimeOperator needs target_lower or target_upper")
	}
	for _, key := range []string{"use_task_logical_date", "use_task_execution_date"} {
		if v := d.take(key); v != nil {
			s.UseLogicalDate, _ = d.r.boolean(key, v)
		}
	}
	return s
}

var branchSQLFields = []string{"conn_id", "sql", "follow_task_ids_if_true", "follow_task_ids_if_false", "database", "parameters"}

// BranchSQLSpec is BranchSQLOperator: the first column of the first row
// of the query decides, by Airflow's rules (a boolean, a number, or one
// of true/yes/y/on/1 and false/no/n/off/0).
type BranchSQLSpec struct {
	SQLSpec
	IfTrue  []string `json:"follow_task_ids_if_true"`
	IfFalse []string `json:"follow_task_ids_if_false"`
}

func (BranchSQLSpec) Kind() string { return "BranchSQLOperator" }
func (BranchSQLSpec) pushesXCom()  {}

// Render renders the SQL and its parameters.
func (s BranchSQLSpec) Render(r *Renderer) (OperatorSpec, error) {
	inner, err := s.SQLSpec.Render(r)
	if err != nil {
		return nil, err
	}
	out := s
	out.SQLSpec = inner.(SQLSpec)
	return out, nil
}

// Choose decides from the query's first value.
func (s BranchSQLSpec) Choose(first any, found bool) (*Branch, error) {
	if !found {
		return nil, fmt.Errorf("the query returned no rows")
	}
	var yes bool
	switch v := first.(type) {
	case bool:
		yes = v
	case int64:
		yes = v != 0
	case float64:
		yes = v != 0
	case []byte:
		return s.Choose(string(v), true)
	case string:
		switch lower(strings.TrimSpace(v)) {
		case "true", "y", "yes", "on", "1":
			yes = true
		case "false", "n", "no", "off", "0":
		default:
			return nil, fmt.Errorf("unexpected query result %q: expected a boolean, a number or true/false, yes/no, on/off, 1/0", v)
		}
	default:
		return nil, fmt.Errorf("unexpected query result %v (%T)", first, first)
	}
	if yes {
		return &Branch{Follow: s.IfTrue}, nil
	}
	return &Branch{Follow: s.IfFalse}, nil
}

func decodeBranchSQL(d *taskDecoder) OperatorSpec {
	s := BranchSQLSpec{SQLSpec: decodeSQL(d).(SQLSpec)}
	s.IfTrue, s.IfFalse = d.followLists()
	return s
}
