package dags

import (
	"strings"
	"time"
)

// Sensors wait for something outside the task: they check ("poke") every
// poke_interval until the condition holds, failing after timeout (skipped
// instead with soft_fail). A sensor's timeout is final: no retry follows,
// as in Airflow.

var sensorFields = []string{"poke_interval", "timeout", "mode", "soft_fail", "exponential_backoff", "max_wait", "deferrable", "silent_fail"}

// SensorSettings are BaseSensorOperator's arguments.
type SensorSettings struct {
	PokeInterval       time.Duration `json:"poke_interval"`
	Timeout            time.Duration `json:"timeout"`
	SoftFail           bool          `json:"soft_fail,omitempty"`
	ExponentialBackoff bool          `json:"exponential_backoff,omitempty"`
	MaxWait            time.Duration `json:"max_wait,omitempty"`
	Mode               string        `json:"mode"` // poke or reschedule: both wait in the server without a slot
}

// Sensor is implemented by sensor specs.
type Sensor interface {
	InProcess
	Settings() SensorSettings
}

func decodeSensor(d *taskDecoder) SensorSettings {
	s := SensorSettings{PokeInterval: time.Minute, Timeout: 7 * 24 * time.Hour, Mode: "poke"}
	if v := d.take("poke_interval"); v != nil {
		if p, ok := d.r.duration("poke_interval", v); ok {
			if p < time.Second {
				d.r.errf(v, "poke_interval must be at least 1 second")
			}
			s.PokeInterval = p
		}
	}
	if v := d.take("timeout"); v != nil {
		s.Timeout, _ = d.r.duration("timeout", v)
	}
	if v := d.take("soft_fail"); v != nil {
		s.SoftFail, _ = d.r.boolean("soft_fail", v)
	}
	if v := d.take("exponential_backoff"); v != nil {
		s.ExponentialBackoff, _ = d.r.boolean("exponential_backoff", v)
	}
	if v := d.take("max_wait"); v != nil {
		s.MaxWait, _ = d.r.duration("max_wait", v)
	}
	if v := d.take("mode"); v != nil {
		if m, ok := d.r.str("mode", v); ok {
			if m != "poke" && m != "reschedule" {
				d.r.errf(v, "mode %q: use poke or reschedule", m)
			}
			s.Mode = m
		}
	}
	if v := d.take("deferrable"); v != nil {
		if on, _ := d.r.boolean("deferrable", v); on {
			d.r.warnf(v, "deferrable is ignored: updraft's sensors wait in the server and hold no worker slot anyway")
		}
	}
	if v := d.take("silent_fail"); v != nil {
		d.r.warnf(v, "silent_fail is ignored: a failed check is logged and poked again")
	}
	return s
}

// NextPoke is how long a sensor waits after its n-th poke (from 1):
// poke_interval, or with exponential_backoff doubling from it, capped by
// max_wait (when set) and never past what is left of the timeout.
func (s SensorSettings) NextPoke(n int, left time.Duration) time.Duration {
	wait := s.PokeInterval
	if s.ExponentialBackoff {
		for i := 1; i < n && wait < 24*time.Hour; i++ {
			wait *= 2
		}
		if s.MaxWait > 0 && wait > s.MaxWait {
			wait = s.MaxWait
		}
	}
	return max(0, min(wait, left))
}

var externalTaskFields = append([]string{"external_dag_id", "external_task_id", "external_task_ids", "external_task_group_id",
	"allowed_states", "failed_states", "skipped_states", "execution_delta", "check_existence"}, sensorFields...)

// ExternalTaskSpec is ExternalTaskSensor: it waits until tasks of another
// DAG (or that DAG's whole run) reach an allowed state in the run whose
// logical date is this run's minus execution_delta.
type ExternalTaskSpec struct {
	ExternalDagID   string         `json:"external_dag_id"`
	ExternalTaskIDs []string       `json:"external_task_ids,omitempty"` // none: the whole run
	AllowedStates   []string       `json:"allowed_states"`
	FailedStates    []string       `json:"failed_states,omitempty"`
	SkippedStates   []string       `json:"skipped_states,omitempty"`
	ExecutionDelta  time.Duration  `json:"execution_delta,omitempty"`
	CheckExistence  bool           `json:"check_existence,omitempty"`
	Sensor          SensorSettings `json:"sensor"`
	// LogicalDate is the other run's logical date, set by Render.
	LogicalDate time.Time `json:"logical_date,omitzero"`
}

func (ExternalTaskSpec) Kind() string               { return "ExternalTaskSensor" }
func (ExternalTaskSpec) inProcess()                 {}
func (s ExternalTaskSpec) Settings() SensorSettings { return s.Sensor }
func (ExternalTaskSpec) templates() []templateField { return nil }
func (s ExternalTaskSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	out.LogicalDate = r.logical.Add(-s.ExecutionDelta)
	return out, nil
}

var (
	taskStateNames = []string{string(StateSuccess), string(StateFailed), string(StateSkipped), string(StateUpstreamFailed),
		string(StateRemoved), string(StateRunning), string(StateQueued), string(StateScheduled), string(StateUpForRetry), string(StateNone)}
	runStateNames = []string{string(RunSuccess), string(RunFailed), string(RunRunning), string(RunQueued)}
)

func decodeExternalTask(d *taskDecoder) OperatorSpec {
	s := ExternalTaskSpec{}
	if v := d.take("external_dag_id"); v != nil {
		s.ExternalDagID, _ = d.r.str("external_dag_id", v)
	} else {
		d.r.errf(d.own, "ExternalTaskSensor needs external_dag_id: the DAG to wait for")
	}
	if v := d.take("external_task_id"); v != nil && !v.isNull() {
		if id, ok := d.r.str("external_task_id", v); ok {
			s.ExternalTaskIDs = []string{id}
		}
	}
	if v := d.take("external_task_ids"); v != nil && !v.isNull() {
		if len(s.ExternalTaskIDs) > 0 {
			d.r.errf(v, "give external_task_id or external_task_ids, not both")
		}
		s.ExternalTaskIDs, _ = d.r.strList("external_task_ids", v)
	}
	if v := d.take("external_task_group_id"); v != nil && !v.isNull() {
		d.r.errf(v, "external_task_group_id is not supported yet; list the group's tasks in external_task_ids")
	}
	allowed := []string{string(StateSuccess)}
	names := taskStateNames
	if len(s.ExternalTaskIDs) == 0 {
		names = runStateNames
	}
	states := func(key string, def []string) []string {
		v := d.take(key)
		if v == nil || v.isNull() {
			return def
		}
		list, _ := d.r.strList(key, v)
		for i, st := range list {
			list[i] = strings.ToLower(st)
			if !contains(names, list[i]) {
				what := "task"
				if len(s.ExternalTaskIDs) == 0 {
					what = "DAG run"
				}
				d.r.errf(v, "%s: %q is not a %s state; use %s", key, st, what, strings.Join(names, ", "))
			}
		}
		return list
	}
	s.AllowedStates = states("allowed_states", allowed)
	s.FailedStates = states("failed_states", nil)
	s.SkippedStates = states("skipped_states", nil)
	if v := d.take("execution_delta"); v != nil && !v.isNull() {
		s.ExecutionDelta, _ = d.r.duration("execution_delta", v)
	}
	if v := d.take("check_existence"); v != nil {
		s.CheckExistence, _ = d.r.boolean("check_existence", v)
	}
	s.Sensor = decodeSensor(d)
	return s
}
