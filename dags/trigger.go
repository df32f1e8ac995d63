package dags

import "time"

var triggerFields = []string{"trigger_dag_id", "trigger_run_id", "conf", "logical_date", "execution_date", "reset_dag_run",
	"wait_for_completion", "poke_interval", "allowed_states", "failed_states", "skip_when_already_exists", "deferrable"}

// TriggerDagRunSpec is TriggerDagRunOperator: it starts a run of another
// DAG, optionally clearing an existing one (reset_dag_run) and waiting
// for it to finish (wait_for_completion).
type TriggerDagRunSpec struct {
	DagID   string         `json:"trigger_dag_id"`
	RunID   string         `json:"trigger_run_id,omitempty"` // default: manual__<logical date>
	Conf    map[string]any `json:"conf,omitempty"`
	Logical string         `json:"logical_date,omitempty"` // templated; default: when the task runs
	Reset   bool           `json:"reset_dag_run,omitempty"`
	Wait    bool           `json:"wait_for_completion,omitempty"`
	// SkipIfExists skips the task when the run exists and is not reset.
	SkipIfExists  bool          `json:"skip_when_already_exists,omitempty"`
	PokeInterval  time.Duration `json:"poke_interval"`
	AllowedStates []string      `json:"allowed_states"`
	FailedStates  []string      `json:"failed_states"`

	at map[string]*val
}

func (TriggerDagRunSpec) Kind() string { return "TriggerDagRunOperator" }
func (TriggerDagRunSpec) inProcess()   {}

func (s TriggerDagRunSpec) templates() []templateField {
	out := []templateField{{"trigger_dag_id", s.DagID, s.at["trigger_dag_id"]}, {"trigger_run_id", s.RunID, s.at["trigger_run_id"]},
		{"logical_date", s.Logical, s.at["logical_date"]}}
	for _, str := range leafStrings(s.Conf) {
		out = append(out, templateField{"conf", str, s.at["conf"]})
	}
	return out
}

// Render renders the DAG id, run id, logical date and every string in conf.
func (s TriggerDagRunSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	var err error
	if out.DagID, err = r.field("trigger_dag_id", s.DagID); err != nil {
		return nil, err
	}
	if out.RunID, err = r.field("trigger_run_id", s.RunID); err != nil {
		return nil, err
	}
	if out.Logical, err = r.field("logical_date", s.Logical); err != nil {
		return nil, err
	}
	if s.Conf != nil {
		conf, err := r.tree("conf", s.Conf)
		if err != nil {
			return nil, err
		}
		out.Conf = conf.(map[string]any)
	}
	return out, nil
}

func decodeTriggerDagRun(d *taskDecoder) OperatorSpec {
	s := TriggerDagRunSpec{PokeInterval: time.Minute, AllowedStates: []string{string(RunSuccess)}, FailedStates: []string{string(RunFailed)},
		at: map[string]*val{}}
	text := func(key string, dst *string) {
		if v := d.take(key); v != nil && !v.isNull() {
			*dst, _ = d.r.str(key, v)
			s.at[key] = v
		}
	}
	text("trigger_dag_id", &s.DagID)
	if s.DagID == "" {
		d.r.errf(d.own, "TriggerDagRunOperator needs trigger_dag_id: the DAG to start")
	}
	text("trigger_run_id", &s.RunID)
	text("logical_date", &s.Logical)
	if s.Logical == "" {
		text("execution_date", &s.Logical) // Airflow's older name
		s.at["logical_date"] = s.at["execution_date"]
	} else if v := d.take("execution_date"); v != nil {
		d.r.errf(v, "give logical_date or execution_date, not both")
	}
	if v := d.take("conf"); v != nil && !v.isNull() {
		s.Conf = toAnyMap(d.r, "conf", v)
		s.at["conf"] = v
	}
	for key, dst := range map[string]*bool{"reset_dag_run": &s.Reset, "wait_for_completion": &s.Wait, "skip_when_already_exists": &s.SkipIfExists} {
		if v := d.take(key); v != nil {
			*dst, _ = d.r.boolean(key, v)
		}
	}
	if v := d.take("poke_interval"); v != nil {
		if p, ok := d.r.duration("poke_interval", v); ok {
			if p < time.Second {
				d.r.errf(v, "poke_interval must be at least 1 second")
			}
			s.PokeInterval = p
		}
	}
	for key, dst := range map[string]*[]string{"allowed_states": &s.AllowedStates, "failed_states": &s.FailedStates} {
		if v := d.take(key); v != nil && !v.isNull() {
			list, _ := d.r.strList(key, v)
			for _, st := range list {
				if !contains(runStateNames, st) {
					d.r.errf(v, "%s: %q is not a DAG run state; use %s", key, st, "success, failed, running, queued")
				}
			}
			*dst = list
		}
	}
	if v := d.take("deferrable"); v != nil {
		if on, _ := d.r.boolean("deferrable", v); on {
			d.r.warnf(v, "deferrable is ignored: the wait happens in the server")
		}
	}
	return s
}
