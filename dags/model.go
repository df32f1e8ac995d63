package dags

import (
	"time"
)

// DAG is one loaded, validated DAG: the specification the scheduler runs.
// A DAG value is immutable once loaded; a changed file yields a new value
// with a new Hash.
type DAG struct {
	ID   string `json:"dag_id"`
	File string `json:"fileloc"` // path relative to the DAG folder
	// Revision is the git commit this version was loaded from ("" for a
	// local folder); a DAG kept from an earlier load keeps its own.
	Revision    string `json:"git_revision,omitempty"`
	Line        int    `json:"line"` // line of the DAG's key in File
	Description string `json:"description,omitempty"`
	DocMD       string `json:"doc_md,omitempty"`
	DisplayName string `json:"dag_display_name,omitempty"`

	Schedule  Timetable      `json:"-"`
	StartDate *time.Time     `json:"start_date,omitempty"` // earliest start over the DAG and its tasks
	EndDate   *time.Time     `json:"end_date,omitempty"`
	Location  *time.Location `json:"-"` // the DAG's time zone; cron follows its wall clock

	Catchup              bool           `json:"catchup"`
	MaxActiveRuns        int            `json:"max_active_runs"`
	MaxActiveTasks       int            `json:"max_active_tasks"`
	DagrunTimeout        time.Duration  `json:"dagrun_timeout,omitempty"`
	Deadlines            []Deadline     `json:"deadlines,omitempty"`
	IsPausedUponCreation bool           `json:"is_paused_upon_creation"`
	Tags                 []string       `json:"tags"`
	Owners               []string       `json:"owners"`
	Params               map[string]any `json:"params,omitempty"`
	DefaultView          string         `json:"default_view,omitempty"`
	Callbacks            Callbacks      `json:"callbacks,omitempty"`

	Tasks  []*Task      `json:"tasks"` // in topological order, ties broken by file order
	Groups []*TaskGroup `json:"task_groups,omitempty"`

	// Hash identifies this version of the DAG: it changes whenever anything
	// that affects how the DAG runs changes (sha256 of the normalised spec).
	Hash string `json:"hash"`

	byID map[string]*Task
}

// Task returns the task with the given id, or nil.
func (d *DAG) Task(id string) *Task { return d.byID[id] }

// Downstream returns the ids of the tasks that directly depend on id.
func (d *DAG) Downstream(id string) []string {
	var out []string
	for _, t := range d.Tasks {
		for _, u := range t.Upstream {
			if u == id {
				out = append(out, t.ID)
			}
		}
	}
	return out
}

// Leaves returns the tasks nothing depends on: they decide a run's state.
func (d *DAG) Leaves() []*Task {
	has := map[string]bool{}
	for _, t := range d.Tasks {
		for _, u := range t.Upstream {
			has[u] = true
		}
	}
	var out []*Task
	for _, t := range d.Tasks {
		if !has[t.ID] {
			out = append(out, t)
		}
	}
	return out
}

// TaskGroup is a named set of tasks shown together; with PrefixGroupID the
// group id prefixes its tasks' ids ("group.task"), as in Airflow.
type TaskGroup struct {
	ID            string `json:"group_id"`
	Name          string `json:"group_name"`
	Parent        string `json:"parent_group_id,omitempty"`
	Tooltip       string `json:"tooltip,omitempty"`
	PrefixGroupID bool   `json:"prefix_group_id"`
}

// Task is one node of a DAG.
type Task struct {
	ID       string   `json:"task_id"` // Airflow task id, group-prefixed when its group says so
	Line     int      `json:"line"`
	Group    string   `json:"task_group_id,omitempty"`
	Upstream []string `json:"upstream_task_ids"` // direct upstream task ids, sorted

	Operator     string `json:"operator"`      // canonical class name, e.g. "BashOperator"
	OperatorPath string `json:"operator_path"` // as written in the file

	Owner                   string        `json:"owner"`
	TriggerRule             TriggerRule   `json:"trigger_rule"`
	Retries                 int           `json:"retries"`
	RetryDelay              time.Duration `json:"retry_delay"`
	RetryExponentialBackoff bool          `json:"retry_exponential_backoff"`
	MaxRetryDelay           time.Duration `json:"max_retry_delay,omitempty"`
	ExecutionTimeout        time.Duration `json:"execution_timeout,omitempty"`
	// SLA is Airflow 2's task sla: the task should have succeeded by this
	// long after its run's data interval ended (scheduled runs only).
	SLA                      time.Duration  `json:"sla,omitempty"`
	DependsOnPast            bool           `json:"depends_on_past"`
	WaitForDownstream        bool           `json:"wait_for_downstream"`
	IgnoreFirstDependsOnPast bool           `json:"ignore_first_depends_on_past"`
	Pool                     string         `json:"pool"`
	PoolSlots                int            `json:"pool_slots"`
	PriorityWeight           int            `json:"priority_weight"`
	WeightRule               string         `json:"weight_rule"`
	Queue                    string         `json:"queue"`
	MaxActiveTisPerDag       int            `json:"max_active_tis_per_dag,omitempty"`
	MaxActiveTisPerDagrun    int            `json:"max_active_tis_per_dagrun,omitempty"`
	StartDate                *time.Time     `json:"start_date,omitempty"`
	EndDate                  *time.Time     `json:"end_date,omitempty"`
	Params                   map[string]any `json:"params,omitempty"`
	DocMD                    string         `json:"doc_md,omitempty"`
	Callbacks                Callbacks      `json:"callbacks,omitempty"`
	// XComPush is do_xcom_push as the file wrote it (nil: the operator's
	// default); see PushesXCom.
	XComPush *bool `json:"do_xcom_push,omitempty"`
	// Expand is set on a mapped task (dynamic task mapping).
	Expand *Expand `json:"expand,omitempty"`

	// Spec holds the operator's own fields (BashSpec, PodSpec, EmptySpec...).
	Spec OperatorSpec `json:"spec"`
}

// SkipOnExitCode returns the exit codes that mark a try skipped instead of
// failed (99 for BashOperator unless configured, as in Airflow).
func (t *Task) SkipOnExitCode() []int {
	if s, ok := t.Spec.(interface{ skipCodes() []int }); ok {
		return s.skipCodes()
	}
	return nil
}

// PushesXCom reports whether the task's tries push their result as XCom
// return_value: do_xcom_push, whose default is Airflow's per operator
// (true for Bash, HTTP, SQL and the branch operators; false for
// KubernetesPodOperator; operators with no result push nothing).
func (t *Task) PushesXCom() bool {
	if p, ok := t.Spec.(PodSpec); ok {
		return p.DoXComPush
	}
	if _, pushes := t.Spec.(interface{ pushesXCom() }); !pushes {
		return false
	}
	return t.XComPush == nil || *t.XComPush
}

// Defaults Airflow 2 applies when a file says nothing.
const (
	DefaultMaxActiveRuns  = 16
	DefaultMaxActiveTasks = 16
	DefaultRetryDelay     = 300 * time.Second
	DefaultPool           = "default_pool"
	DefaultQueue          = "default"
	DefaultOwner          = "airflow"
	// MaxTaskRetryDelay is Airflow's [core] max_task_retry_delay.
	MaxTaskRetryDelay = 24 * time.Hour
)

// TriggerRule decides when a task runs given its direct upstream states.
type TriggerRule string

// Airflow's trigger rules.
const (
	AllSuccess               TriggerRule = "all_success"
	AllFailed                TriggerRule = "all_failed"
	AllDone                  TriggerRule = "all_done"
	AllSkipped               TriggerRule = "all_skipped"
	OneSuccess               TriggerRule = "one_success"
	OneFailed                TriggerRule = "one_failed"
	OneDone                  TriggerRule = "one_done"
	NoneFailed               TriggerRule = "none_failed"
	NoneFailedMinOneSuccess  TriggerRule = "none_failed_min_one_success"
	NoneSkipped              TriggerRule = "none_skipped"
	Always                   TriggerRule = "always"
	AllDoneSetupSuccess      TriggerRule = "all_done_setup_success"
	noneFailedOrSkippedAlias TriggerRule = "none_failed_or_skipped"
	dummyAlias               TriggerRule = "dummy"
)

// TriggerRules lists every rule updraft accepts, aliases resolved.
var TriggerRules = []TriggerRule{AllSuccess, AllFailed, AllDone, AllSkipped, OneSuccess, OneFailed,
	OneDone, NoneFailed, NoneFailedMinOneSuccess, NoneSkipped, Always, AllDoneSetupSuccess}

// ParseTriggerRule resolves a rule name (case-insensitive, with Airflow's
// aliases and the TriggerRule.X spelling) to its canonical value.
func ParseTriggerRule(s string) (TriggerRule, bool) {
	r := TriggerRule(lower(trimPrefixFold(s, "TriggerRule.")))
	switch r {
	case noneFailedOrSkippedAlias:
		return NoneFailedMinOneSuccess, true
	case dummyAlias:
		return Always, true
	}
	for _, known := range TriggerRules {
		if r == known {
			return r, true
		}
	}
	return "", false
}

// Callbacks are the alert hooks of a DAG or task, kept as written.
type Callbacks map[string]Callback

// Callback is one callback from a file. updraft cannot run Python, so a
// callback either maps onto a built-in notifier (Notifier set) or is kept
// for display only.
type Callback struct {
	Name     string            `json:"name"`               // e.g. on_failure_callback
	Target   string            `json:"target"`             // dotted path as written
	Notifier string            `json:"notifier,omitempty"` // "slack" / "mattermost" when recognised
	Args     map[string]string `json:"args,omitempty"`     // notifier arguments (text, channel, ...)
	Line     int               `json:"line"`
}

// ReturnValueKey is the XCom key of an operator's result.
const ReturnValueKey = "return_value"

// Mapped reports whether the task is mapped (expand): its task instances
// have map indexes 0..n-1.
func (t *Task) Mapped() bool { return t.Expand != nil }
