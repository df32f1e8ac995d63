package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/builtin"
	"updraft/executor/local"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web"
)

// common holds the --dags and --db flags most commands share.
type common struct {
	dags, db string
}

func (m Main) commonFlags(name string) (*flag.FlagSet, *common) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	c := &common{}
	fl.StringVar(&c.dags, "dags", m.envOr("UPDRAFT_DAGS", "dags"), "folder of DAG files (env UPDRAFT_DAGS)")
	fl.StringVar(&c.db, "db", m.envOr("UPDRAFT_DB", "sqlite:updraft.db"), "metadata database: sqlite:PATH or postgres://user:pass@host/db (env UPDRAFT_DB)")
	return fl, c
}

// storeCommand starts a database subcommand: it prints use when there is
// no subcommand, parses the flags (flags adds the command's own) wherever
// they stand among the arguments, and opens the database. A non-zero code
// means the command stops with it; otherwise the caller closes st.
func (m Main) storeCommand(ctx context.Context, name, use string, args []string, flags func(*flag.FlagSet)) ([]string, *store.Store, int) {
	if len(args) == 0 {
		fmt.Fprintln(m.Stderr, use)
		return nil, nil, 2
	}
	fl, c := m.commonFlags(name + " " + args[0])
	if flags != nil {
		flags(fl)
	}
	pos, err := parseInterleaved(fl, args[1:])
	if err != nil {
		return nil, nil, 2
	}
	st, err := openStore(ctx, c.db)
	if err != nil {
		return nil, nil, m.fail(err)
	}
	return pos, st, 0
}

// fail reports err on stderr and returns exit code 1.
func (m Main) fail(err error) int {
	fmt.Fprintln(m.Stderr, "updraft:", strings.TrimSuffix(err.Error(), ": bad request"))
	return 1
}

// parseInterleaved parses flags that may come before or after positional
// arguments and returns the positional ones.
func parseInterleaved(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		if fl.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
}

// staticBag serves one load of a DAG folder.
type staticBag struct {
	res *dags.Result
	at  time.Time
}

func (b staticBag) Current() (*dags.Result, time.Time) { return b.res, b.at }

func loadBag(dir string) (staticBag, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return staticBag{}, fmt.Errorf("DAG folder %s: not a readable folder", dir)
	}
	return staticBag{dags.Load(dags.DirFS(dir), dags.Options{}), time.Now()}, nil
}

// noExecutor is for commands that record runs for the server to execute.
type noExecutor struct{}

func (noExecutor) Start(context.Context, executor.Try) error           { return errors.New("no executor") }
func (noExecutor) Kill(context.Context, executor.TryKey, string) error { return nil }
func (noExecutor) Adopt(context.Context, executor.Try) error           { return executor.ErrGone }
func (noExecutor) Events() <-chan executor.Event                       { return nil }
func (noExecutor) Free() int                                           { return 0 }

func parseConf(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	var conf map[string]any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&conf); err != nil {
		return nil, fmt.Errorf("--conf must be a JSON object: %w", err)
	}
	conf, _ = dags.JSONNumbers(conf).(map[string]any)
	return conf, nil
}

// dagsTest runs one complete run of a DAG in-process with the local
// executor and a throwaway store, and exits 0 only if it succeeded.
func (m Main) dagsTest(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("dags test")
	conf := fl.String("conf", "", "dag_run.conf as JSON")
	parallelism := fl.Int("parallelism", 16, "tasks run at once")
	keep := fl.Bool("keep", false, "keep the run's temporary folder (database and logs) and print its path")
	interpreter := fl.String("python", m.envOr("UPDRAFT_PYTHON", "python3"), "interpreter Python callables run with (env UPDRAFT_PYTHON)")
	vars := map[string]string{}
	fl.Func("var", "a Variable for the run, KEY=VALUE (repeatable); names that look secret are masked", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE")
		}
		vars[k] = v
		return nil
	})
	pos, err := parseInterleaved(fl, args)
	if err != nil || len(pos) < 1 || len(pos) > 2 || *parallelism < 1 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags test [--dags DIR] [--conf JSON] [--var KEY=VALUE]... [--parallelism N] [--keep] DAG_ID [LOGICAL_DATE]")
		return 2
	}
	bag, d, code := m.loadDAG(c.dags, pos[0])
	if d == nil {
		return code
	}
	opts := scheduler.TriggerOptions{Actor: "dags test"}
	if len(pos) == 2 {
		logical, err := parseDate(pos[1])
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft:", err)
			return 2
		}
		opts.LogicalDate = &logical
	}
	if opts.Conf, err = parseConf(*conf); err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	tmp, err := m.tempFolder("updraft-dags-test-", *keep)
	if err != nil {
		return m.fail(err)
	}
	defer tmp.remove()
	st, err := openStore(ctx, "sqlite:"+filepath.Join(tmp.path, "test.db"))
	if err != nil {
		return m.fail(err)
	}
	defer st.Close()
	// --parallelism is how many tasks run at once: the throwaway
	// database's default pool must not hold them to its 128 slots.
	if *parallelism > 128 {
		if err := st.SetPool(ctx, store.Pool{Name: "default_pool", Slots: *parallelism, Description: "Default pool"}); err != nil {
			return m.fail(err)
		}
	}
	for k, v := range vars {
		if err := st.SetVariable(ctx, store.Variable{Key: k, Value: v, Secret: dags.SensitiveName(k), UpdatedAt: time.Now()}); err != nil {
			return m.fail(err)
		}
	}
	logger := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	masker := dags.NewMasker()
	_ = secretSources{conns: m.connections()}.teach(ctx, masker)
	st.MaskWith(masker)
	starter := &runStarter{st: st}
	lexec := local.New(*parallelism, logger)
	if hasPython(d) {
		dir, err := filepath.Abs(c.dags)
		if err != nil {
			return m.fail(err)
		}
		py, err := newPythonTries(ctx, st, filepath.Join(tmp.path, "python"), func(string) (string, error) { return dir, nil },
			m.connections(), masker, logger)
		if err != nil {
			return m.fail(err)
		}
		apiCtx, stopAPI := context.WithCancel(ctx)
		defer stopAPI()
		apiURL, err := py.serveAPI(apiCtx)
		if err != nil {
			return m.fail(err)
		}
		lexec.UsePython(py.local(*interpreter, apiURL))
	}
	router := builtin.NewRouter(lexec, builtin.New(builtin.Options{Connections: m.connections(), Secrets: st.SecretValues,
		External: externalLookup(st), Runs: starter, Log: logger}))
	// The run is looked at after each scheduling step (a run ends only in
	// one), not polled: polling cost the run's own tasks CPU.
	stepped := make(chan struct{}, 1)
	sched := scheduler.New(st, router, bag, scheduler.Options{LogDir: filepath.Join(tmp.path, "logs"), Log: logger, ManualOnly: true,
		Parallelism: *parallelism, Mask: masker, ObserveStep: func(time.Duration) {
			select {
			case stepped <- struct{}{}:
			default:
			}
		}})
	starter.sched = sched
	if err := sched.SetPaused(ctx, d.ID, false, "dags test"); err != nil {
		return m.fail(err)
	}
	run, err := sched.Trigger(ctx, d.ID, opts)
	if err != nil {
		return m.fail(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	routed := make(chan error, 1)
	go func() { routed <- router.Run(ctx) }()
	defer func() { <-routed }()
	for ctx.Err() == nil {
		if run, err = st.Run(ctx, d.ID, run.RunID); err != nil || run.State.Finished() {
			break
		}
		select {
		case <-stepped:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	cancel()
	<-done
	if err != nil {
		return m.fail(err)
	}
	tis, _ := st.TaskInstances(context.Background(), d.ID, run.RunID)
	byTask := map[string][]store.TaskInstance{}
	for _, ti := range tis {
		byTask[ti.TaskID] = append(byTask[ti.TaskID], ti)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	if *keep {
		fmt.Fprintf(w, "TASK\tSTATE\tTRIES\tLOG\n")
	} else {
		fmt.Fprintf(w, "TASK\tSTATE\tTRIES\n")
	}
	var failedLogs []string
	for _, t := range d.Tasks {
		for _, ti := range byTask[t.ID] {
			name := t.ID
			if ti.MapIndex >= 0 {
				name = strings.TrimSpace(fmt.Sprintf("%s[%d] %s", t.ID, ti.MapIndex, ti.Label))
			}
			logPath := ""
			if ti.TryNumber > 0 {
				logPath = sched.LogPath(executor.TryKey{DagID: d.ID, RunID: run.RunID, TaskID: t.ID, TryNumber: ti.TryNumber, MapIndex: ti.MapIndex})
			}
			if ti.State == dags.StateFailed && logPath != "" {
				failedLogs = append(failedLogs, logPath)
			}
			if *keep {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", name, ti.State, ti.TryNumber, logPath)
			} else {
				fmt.Fprintf(w, "%s\t%s\t%d\n", name, ti.State, ti.TryNumber)
			}
		}
	}
	w.Flush()
	if !*keep {
		// The logs go with the folder: show what failed before they do.
		for _, p := range failedLogs {
			fmt.Fprintf(m.Stderr, "--- %s ---\n%s", filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), logTail(p, 20))
		}
	}
	fmt.Fprintf(m.Stdout, "run %s: %s\n", run.RunID, run.State)
	if run.State != dags.RunSuccess {
		return 1
	}
	return 0
}

// loadDAG loads the DAG folder and finds one DAG. When it cannot, it says
// why (the DAG's own errors, if it has some) and returns the exit code.
func (m Main) loadDAG(dir, id string) (staticBag, *dags.DAG, int) {
	bag, err := loadBag(dir)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return bag, nil, 2
	}
	if d := bag.res.DAG(id); d != nil {
		return bag, d, 0
	}
	for _, p := range bag.res.Problems().Errors() {
		if p.DAG == id {
			fmt.Fprintln(m.Stderr, p)
		}
	}
	fmt.Fprintf(m.Stderr, "updraft: no loadable DAG %q in %s\n", id, dir)
	return bag, nil, 1
}

// dagsTrigger records a manual run for the server to execute.
func (m Main) dagsTrigger(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("dags trigger")
	conf := fl.String("conf", "", "dag_run.conf as JSON")
	logicalDate := fl.String("logical-date", "", "logical date (default: now)")
	runID := fl.String("run-id", "", "run id (default: manual__<logical date>)")
	pos, err := parseInterleaved(fl, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags trigger [--conf JSON] [--logical-date DATE] [--run-id ID] DAG_ID")
		return 2
	}
	opts := scheduler.TriggerOptions{RunID: *runID, Actor: "cli"}
	if opts.Conf, err = parseConf(*conf); err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	if *logicalDate != "" {
		t, err := parseDate(*logicalDate)
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft:", err)
			return 2
		}
		opts.LogicalDate = &t
	}
	return m.withScheduler(ctx, c, func(s *scheduler.Scheduler) error {
		run, err := s.Trigger(ctx, pos[0], opts)
		if err == nil {
			fmt.Fprintf(m.Stdout, "created run %s of %s (%s)\n", run.RunID, run.DagID, run.State)
		}
		return err
	})
}

func (m Main) dagsPause(ctx context.Context, args []string, paused bool) int {
	fl, c := m.commonFlags("dags pause")
	pos, err := parseInterleaved(fl, args)
	if err != nil || len(pos) != 1 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags pause|unpause DAG_ID")
		return 2
	}
	return m.withScheduler(ctx, c, func(s *scheduler.Scheduler) error {
		if err := s.SetPaused(ctx, pos[0], paused, "cli"); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s paused: %v\n", pos[0], paused)
		return nil
	})
}

// withScheduler runs fn with a scheduler over the configured store and DAG
// folder that executes nothing (the server does).
func (m Main) withScheduler(ctx context.Context, c *common, fn func(*scheduler.Scheduler) error) int {
	bag, err := loadBag(c.dags)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	st, err := openStore(ctx, c.db)
	if err != nil {
		return m.fail(err)
	}
	defer st.Close()
	if err := fn(scheduler.New(st, noExecutor{}, bag, scheduler.Options{})); err != nil {
		return m.fail(err)
	}
	return 0
}

// tasksTest renders and runs one task with the local executor, without
// recording anything, and prints its rendered fields and output.
func (m Main) tasksTest(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("tasks test")
	conf := fl.String("conf", "", "dag_run.conf as JSON")
	keep := fl.Bool("keep", false, "keep the task's temporary folder (its log) and print its path")
	pos, err := parseInterleaved(fl, args)
	if err != nil || len(pos) < 2 || len(pos) > 3 {
		fmt.Fprintln(m.Stderr, "usage: updraft tasks test [--dags DIR] [--conf JSON] [--keep] DAG_ID TASK_ID [LOGICAL_DATE]")
		return 2
	}
	_, d, code := m.loadDAG(c.dags, pos[0])
	if d == nil {
		return code
	}
	t := d.Task(pos[1])
	if t == nil {
		fmt.Fprintf(m.Stderr, "updraft: DAG %s has no task %q\n", d.ID, pos[1])
		return 1
	}
	logical := time.Now().UTC()
	if len(pos) == 3 {
		if logical, err = parseDate(pos[2]); err != nil {
			fmt.Fprintln(m.Stderr, "updraft:", err)
			return 2
		}
	}
	rc := dags.RunContext{DAG: d, RunType: dags.RunTypeManual, LogicalDate: logical, DataInterval: d.Schedule.InferManual(logical), TryNumber: 1}
	if info, ok := dags.ScheduledRunAt(d, logical); ok && *conf == "" {
		rc.RunType, rc.DataInterval = dags.RunTypeScheduled, info.Interval
	}
	rc.RunID = dags.RunID(rc.RunType, logical)
	if rc.Conf, err = parseConf(*conf); err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	vars := map[string]string{}
	if path, ok := strings.CutPrefix(c.db, "sqlite:"); ok {
		if _, err := os.Stat(path); err == nil {
			if st, err := openStore(ctx, c.db); err == nil {
				vars, _ = st.VariableValues(ctx)
				st.Close()
			}
		}
	}
	spec, err := dags.Render(t, rc, vars)
	if err != nil {
		return m.fail(err)
	}
	rendered, _ := json.MarshalIndent(spec, "", "  ")
	fmt.Fprintf(m.Stdout, "rendered %s.%s for %s:\n%s\n", d.ID, t.ID, rc.RunID, rendered)
	tmp, err := m.tempFolder("updraft-tasks-test-", *keep)
	if err != nil {
		return m.fail(err)
	}
	defer tmp.remove()
	if _, py := spec.(dags.PythonSpec); py {
		return m.fail(errors.New("tasks test does not run Python callables (their credential needs a recorded try): use dags test"))
	}
	var ex executor.Executor = local.New(1, slog.New(slog.DiscardHandler))
	if builtin.Handles(spec) {
		ex = builtin.New(builtin.Options{Connections: m.connections(), Log: slog.New(slog.DiscardHandler)})
	}
	key := executor.TryKey{DagID: d.ID, RunID: rc.RunID, TaskID: t.ID, TryNumber: 1, MapIndex: -1}
	try := executor.Try{Key: key, Spec: spec, SkipOn: t.SkipOnExitCode(), Timeout: t.ExecutionTimeout, LogPath: filepath.Join(tmp.path, "task.log"),
		ContextEnv: []string{"AIRFLOW_CTX_DAG_OWNER=" + t.Owner, "AIRFLOW_CTX_DAG_ID=" + d.ID, "AIRFLOW_CTX_TASK_ID=" + t.ID,
			"AIRFLOW_CTX_LOGICAL_DATE=" + logical.UTC().Format("2006-01-02T15:04:05+00:00"), "AIRFLOW_CTX_EXECUTION_DATE=" + logical.UTC().Format("2006-01-02T15:04:05+00:00"),
			"AIRFLOW_CTX_TRY_NUMBER=1", "AIRFLOW_CTX_DAG_RUN_ID=" + rc.RunID}}
	if err := ex.Start(ctx, try); err != nil {
		return m.fail(err)
	}
	var final executor.Event
	for ev := range ex.Events() {
		if ev.State != executor.Running {
			final = ev
			break
		}
	}
	out, _ := os.ReadFile(try.LogPath)
	fmt.Fprintf(m.Stdout, "--- output ---\n%s--- %s %s\n", out, final.State, final.Reason)
	if final.State == executor.Failed {
		return 1
	}
	return 0
}

// variables manages Airflow Variables in the store. Secret values are
// never printed by list.
func (m Main) variables(ctx context.Context, args []string) int {
	var secret *bool
	var desc *string
	pos, st, code := m.storeCommand(ctx, "variables", "usage: updraft variables get|set|list|delete ...", args, func(fl *flag.FlagSet) {
		secret = fl.Bool("secret", false, "with set: never show the value")
		desc = fl.String("description", "", "with set: a description")
	})
	if code != 0 {
		return code
	}
	defer st.Close()
	switch {
	case args[0] == "list" && len(pos) == 0:
		vs, err := st.Variables(ctx)
		if err != nil {
			return m.fail(err)
		}
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "KEY\tVALUE\tDESCRIPTION")
		for _, v := range vs {
			value := v.Value
			if v.Secret {
				value = "***"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", v.Key, value, v.Description)
		}
		w.Flush()
	case args[0] == "get" && len(pos) == 1:
		v, err := st.Variable(ctx, pos[0])
		if err != nil {
			return m.fail(err)
		}
		fmt.Fprintln(m.Stdout, v.Value)
	case args[0] == "set" && len(pos) == 2:
		if err := st.SetVariable(ctx, store.Variable{Key: pos[0], Value: pos[1], Secret: *secret || dags.SensitiveName(pos[0]), Description: *desc, UpdatedAt: time.Now()}); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "variable_set", Detail: pos[0]})
	case args[0] == "delete" && len(pos) == 1:
		if err := st.DeleteVariable(ctx, pos[0]); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "variable_delete", Detail: pos[0]})
	default:
		fmt.Fprintln(m.Stderr, "usage: updraft variables list | get KEY | set KEY VALUE [--secret] [--description D] | delete KEY")
		return 2
	}
	return 0
}

func (m Main) dbMigrate(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("db migrate")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	st, err := openStore(ctx, c.db)
	if err != nil {
		return m.fail(err)
	}
	st.Close()
	fmt.Fprintf(m.Stdout, "database %s is up to date\n", store.RedactDSN(c.db))
	return 0
}

// dbCheck reports whether the database answers and has this build's schema.
func (m Main) dbCheck(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("db check")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	st, err := store.Open(ctx, c.db)
	if err != nil {
		fmt.Fprintln(m.Stdout, "updraft: database unreachable:", err)
		return 1
	}
	defer st.Close()
	applied, latest, err := st.SchemaVersion(ctx)
	switch {
	case err != nil:
		fmt.Fprintln(m.Stdout, "updraft: database answers but its schema cannot be read:", err)
		return 1
	case applied < latest:
		fmt.Fprintf(m.Stdout, "database %s: schema version %d, this build needs %d: run `updraft db migrate`\n", store.RedactDSN(c.db), applied, latest)
		return 1
	case applied > latest:
		fmt.Fprintf(m.Stdout, "database %s: schema version %d is newer than this build's %d: upgrade updraft\n", store.RedactDSN(c.db), applied, latest)
		return 1
	}
	fmt.Fprintf(m.Stdout, "database %s: reachable, schema version %d\n", store.RedactDSN(c.db), applied)
	return 0
}

// dbClean removes old history (Airflow's `db clean`).
func (m Main) dbClean(ctx context.Context, args []string) int {
	fl, c := m.commonFlags("db clean")
	before := fl.String("before", "", "remove history before this date (2024-01-01 or RFC 3339)")
	olderThan := fl.Duration("older-than", 0, "or: remove history older than this, e.g. 2160h (90 days)")
	dry := fl.Bool("dry-run", false, "say what would be removed, remove nothing")
	keepLogs := fl.Bool("keep-logs", false, "leave the removed tries' log files")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	var cut time.Time
	switch {
	case *before != "" && *olderThan != 0:
		fmt.Fprintln(m.Stderr, "updraft: use --before or --older-than, not both")
		return 2
	case *before != "":
		t, err := parseDate(*before)
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft:", err)
			return 2
		}
		cut = t
	case *olderThan > 0:
		cut = time.Now().Add(-*olderThan)
	default:
		fmt.Fprintln(m.Stderr, "usage: updraft db clean (--before DATE | --older-than DURATION) [--dry-run] [--keep-logs]")
		return 2
	}
	st, err := openStore(ctx, c.db)
	if err != nil {
		return m.fail(err)
	}
	defer st.Close()
	rep, err := st.Clean(ctx, cut, *dry)
	if err != nil {
		return m.fail(err)
	}
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	fmt.Fprintf(m.Stdout, "%s history before %s: %d runs, %d task instances, %d tries, %d XComs, %d audit entries, %d alerts, %d DAG versions\n",
		verb, cut.UTC().Format(time.RFC3339), rep.Runs, rep.TaskInstances, rep.Tries, rep.XComs, rep.AuditEntries, rep.Alerts, rep.Versions)
	if *dry || *keepLogs {
		return 0
	}
	removed := 0
	for _, p := range rep.LogPaths {
		if err := os.Remove(p); err == nil {
			removed++
		}
		base := strings.TrimSuffix(p, ".log")
		os.Remove(base + ".pid")
		os.Remove(base + ".exit")
		// Folders left empty go too (run_id=..., then task_id=... above).
		for dir := filepath.Dir(p); dir != "." && dir != "/"; dir = filepath.Dir(dir) {
			if os.Remove(dir) != nil {
				break
			}
		}
	}
	fmt.Fprintf(m.Stdout, "removed %d log files\n", removed)
	return 0
}

// pools is `updraft pools list|set|delete`, as Airflow's `airflow pools`.
func (m Main) pools(ctx context.Context, args []string) int {
	const use = "usage: updraft pools list | set NAME SLOTS [--description D] | delete NAME"
	var desc *string
	pos, st, code := m.storeCommand(ctx, "pools", use, args, func(fl *flag.FlagSet) {
		desc = fl.String("description", "", "with set: a description")
	})
	if code != 0 {
		return code
	}
	defer st.Close()
	switch {
	case args[0] == "list" && len(pos) == 0:
		pools, err := st.Pools(ctx)
		if err != nil {
			return m.fail(err)
		}
		use, err := st.PoolUsage(ctx)
		if err != nil {
			return m.fail(err)
		}
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "POOL\tSLOTS\tRUNNING\tQUEUED\tDESCRIPTION")
		for _, p := range pools {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", p.Name, p.Slots, use[p.Name].Running, use[p.Name].Queued, p.Description)
		}
		w.Flush()
	case args[0] == "set" && len(pos) == 2:
		slots, err := strconv.Atoi(pos[1])
		if err != nil {
			return m.fail(fmt.Errorf("slots %q: not a whole number", pos[1]))
		}
		p := store.Pool{Name: pos[0], Slots: slots, Description: *desc}
		if err := web.ValidatePool(p); err != nil {
			return m.fail(err)
		}
		if err := st.SetPool(ctx, p); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "pool_set", Detail: fmt.Sprintf("pool=%s slots=%d", p.Name, p.Slots)})
		fmt.Fprintf(m.Stdout, "pool %s has %d slots\n", p.Name, p.Slots)
	case args[0] == "delete" && len(pos) == 1:
		if err := web.CheckPoolDelete(pos[0]); err != nil {
			return m.fail(err)
		}
		if err := st.DeletePool(ctx, pos[0]); err != nil {
			return m.fail(err)
		}
		_ = st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "cli", Action: "pool_delete", Detail: "pool=" + pos[0]})
		fmt.Fprintf(m.Stdout, "pool %s deleted\n", pos[0])
	default:
		fmt.Fprintln(m.Stderr, use)
		return 2
	}
	return 0
}

// tempFolder is a command's temporary folder: removed when the command
// ends unless kept, in which case its path is printed.
type tempFolder struct {
	path string
	keep bool
}

func (m Main) tempFolder(prefix string, keep bool) (tempFolder, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err == nil && keep {
		fmt.Fprintln(m.Stderr, "updraft: keeping", dir)
	}
	return tempFolder{path: dir, keep: keep}, err
}

func (t tempFolder) remove() {
	if !t.keep && t.path != "" {
		os.RemoveAll(t.path)
	}
}

// logTail returns the last n lines of a log file.
func logTail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// hasPython reports whether a DAG has a task whose work is a Python
// callable.
func hasPython(d *dags.DAG) bool {
	for _, t := range d.Tasks {
		if _, ok := t.Spec.(dags.PythonSpec); ok {
			return true
		}
	}
	return false
}
