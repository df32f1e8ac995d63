package dags

import (
	"strconv"
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

var httpSensorFields = append([]string{"http_conn_id", "endpoint", "method", "request_params", "headers", "response_check",
	"response_error_codes_allowlist", "extra_options", "tcp_keep_alive", "tcp_keep_alive_idle", "tcp_keep_alive_count",
	"tcp_keep_alive_interval"}, sensorFields...)

// HttpSensorSpec is HttpSensor: it requests an endpoint until the answer
// passes response_check (without one: any status below 400). A status in
// response_error_codes_allowlist (404) means "not yet"; any other error
// status fails the try, as in Airflow.
type HttpSensorSpec struct {
	Request      HttpSpec       `json:"request"`
	NotYetStatus []int          `json:"response_error_codes_allowlist"`
	Sensor       SensorSettings `json:"sensor"`
}

func (HttpSensorSpec) Kind() string                 { return "HttpSensor" }
func (HttpSensorSpec) inProcess()                   {}
func (s HttpSensorSpec) Settings() SensorSettings   { return s.Sensor }
func (s HttpSensorSpec) templates() []templateField { return s.Request.templates() }
func (s HttpSensorSpec) Render(r *Renderer) (OperatorSpec, error) {
	req, err := s.Request.Render(r)
	if err != nil {
		return nil, err
	}
	out := s
	out.Request = req.(HttpSpec)
	return out, nil
}

func decodeHTTPSensor(d *taskDecoder) OperatorSpec {
	s := HttpSensorSpec{Request: decodeHTTPWith(d, "GET", "request_params"), NotYetStatus: []int{404}}
	if v := d.take("response_error_codes_allowlist"); v != nil {
		if list, ok := d.r.strList("response_error_codes_allowlist", v); ok {
			s.NotYetStatus = nil
			for _, c := range list {
				n, err := strconv.Atoi(c)
				if err != nil || n < 100 || n > 599 {
					d.r.errf(v, "response_error_codes_allowlist: %q is not an HTTP status", c)
					continue
				}
				s.NotYetStatus = append(s.NotYetStatus, n)
			}
		}
	}
	s.Sensor = decodeSensor(d)
	return s
}

var sqlSensorFields = append([]string{"conn_id", "sql", "parameters", "success", "failure", "fail_on_empty", "hook_params"}, sensorFields...)

// SqlSensorSpec is SqlSensor: it runs a query until the first cell of its
// first row is true (not null, zero, false or empty); no row means "not
// yet", or a failure with fail_on_empty.
type SqlSensorSpec struct {
	Query       SQLSpec        `json:"query"`
	FailOnEmpty bool           `json:"fail_on_empty,omitempty"`
	Sensor      SensorSettings `json:"sensor"`
}

func (SqlSensorSpec) Kind() string                 { return "SqlSensor" }
func (SqlSensorSpec) inProcess()                   {}
func (s SqlSensorSpec) Settings() SensorSettings   { return s.Sensor }
func (s SqlSensorSpec) templates() []templateField { return s.Query.templates() }
func (s SqlSensorSpec) Render(r *Renderer) (OperatorSpec, error) {
	q, err := s.Query.Render(r)
	if err != nil {
		return nil, err
	}
	out := s
	out.Query = q.(SQLSpec)
	return out, nil
}

func decodeSQLSensor(d *taskDecoder) OperatorSpec {
	for _, key := range []string{"success", "failure"} {
		if v := d.take(key); v != nil && !v.isNull() {
			d.r.errf(v, "%s is a Python function; updraft runs no Python (write the condition into the query: its first cell is tested)", key)
		}
	}
	s := SqlSensorSpec{}
	if v := d.take("fail_on_empty"); v != nil {
		s.FailOnEmpty, _ = d.r.boolean("fail_on_empty", v)
	}
	q := decodeSQL(d).(SQLSpec)
	q.SplitStatements = false
	if len(q.SQL) > 1 {
		d.r.errf(q.at, "SqlSensor runs one query; give sql as one statement")
	}
	s.Query = q
	s.Sensor = decodeSensor(d)
	return s
}
