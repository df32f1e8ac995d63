package dags

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// versionRecord is how a DAG version is kept in the store: the DAG as JSON
// plus what JSON alone does not carry (its time zone and schedule).
type versionRecord struct {
	DAG      *DAG   `json:"dag"`
	Timezone string `json:"timezone"`
	Schedule string `json:"schedule"`
}

// EncodeVersion returns the stored form of a DAG version; DecodeVersion
// reads it back.
func EncodeVersion(d *DAG) ([]byte, error) {
	tz := "UTC"
	if d.Location != nil {
		tz = d.Location.String()
	}
	return json.Marshal(versionRecord{DAG: d, Timezone: tz, Schedule: d.Schedule.Summary()})
}

// DecodeVersion rebuilds a DAG version from EncodeVersion's output, so a
// run created before a restart finishes on the version it started with even
// when its file has changed since. The result runs tasks exactly as the
// original did, but its timetable is archived: it creates no runs (only the
// current version of a DAG schedules) and reports the schedule as written.
func DecodeVersion(data []byte) (*DAG, error) {
	var rec versionRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode dag version: %w", err)
	}
	d := rec.DAG
	if d == nil || d.ID == "" || len(d.Tasks) == 0 {
		return nil, fmt.Errorf("decode dag version: not a stored dag version")
	}
	loc, err := time.LoadLocation(rec.Timezone)
	if err != nil {
		// A fixed offset such as "+02:00", named by fixedZone.
		var sign byte
		var h, m int
		if n, _ := fmt.Sscanf(rec.Timezone, "%c%02d:%02d", &sign, &h, &m); n != 3 || (sign != '+' && sign != '-') {
			return nil, fmt.Errorf("decode dag version %s: %w", d.ID, err)
		}
		off := (h*60 + m) * 60
		if sign == '-' {
			off = -off
		}
		loc = fixedZone(off)
	}
	d.Location = loc
	d.Schedule = archivedTimetable{summary: rec.Schedule}
	d.byID = map[string]*Task{}
	for _, t := range d.Tasks {
		d.byID[t.ID] = t
	}
	return d, nil
}

// UnmarshalJSON reads a task back, choosing its Spec type from Operator.
func (t *Task) UnmarshalJSON(data []byte) error {
	type plain Task
	aux := struct {
		*plain
		Spec json.RawMessage `json:"spec"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	spec, err := DecodeSpec(t.Operator, aux.Spec)
	if err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	t.Spec = spec
	return nil
}

// DecodeSpec reads an operator's spec back from its JSON (a version in the
// store, or the rendered spec recorded with a try), choosing its type from
// the operator's class. Empty data gives the operator's zero spec.
func DecodeSpec(operator string, data []byte) (OperatorSpec, error) {
	if isPythonSpec(operator, data) {
		var s PythonSpec
		if len(data) > 0 && string(data) != "null" {
			if err := json.Unmarshal(data, &s); err != nil {
				return nil, fmt.Errorf("spec: %w", err)
			}
		}
		return s, nil
	}
	for _, k := range operators {
		if k.class != operator {
			continue
		}
		p := reflect.New(reflect.TypeOf(k.zero))
		if len(data) > 0 && string(data) != "null" {
			if err := json.Unmarshal(data, p.Interface()); err != nil {
				return nil, fmt.Errorf("spec: %w", err)
			}
		}
		return p.Elem().Interface().(OperatorSpec), nil
	}
	return nil, fmt.Errorf("unknown operator %q", operator)
}

// archivedTimetable stands in for the timetable of a DAG version read back
// from the store: it never schedules.
type archivedTimetable struct{ summary string }

func (archivedTimetable) Next(*DataInterval, Restriction, time.Time) (DagRunInfo, bool) {
	return DagRunInfo{}, false
}
func (archivedTimetable) InferManual(t time.Time) DataInterval { return DataInterval{t, t} }
func (a archivedTimetable) Summary() string                    { return a.summary }
func (archivedTimetable) Periodic() bool                       { return false }
