package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"updraft/dags"
)

// loadPaths loads each PATH (a folder, or a single file with its folder's
// defaults) and returns the results with problem paths as the user wrote
// them.
func loadPaths(paths []string) ([]*dags.Result, error) {
	var out []*dags.Result
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		var res *dags.Result
		prefix := p
		if st.IsDir() {
			res = dags.Load(dags.DirFS(p), dags.Options{})
		} else {
			prefix = filepath.Dir(p)
			res = dags.LoadFiles(dags.DirFS(prefix), []string{filepath.Base(p)}, dags.Options{})
		}
		for i := range res.Files {
			f := &res.Files[i]
			f.Path = filepath.Join(prefix, f.Path)
			for j := range f.Problems {
				f.Problems[j].File = filepath.Join(prefix, f.Problems[j].File)
			}
		}
		for _, d := range res.DAGs {
			d.File = filepath.Join(prefix, d.File)
		}
		out = append(out, res)
	}
	return out, nil
}

func (m Main) dagsValidate(args []string) int {
	fl := flag.NewFlagSet("dags validate", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	quiet := fl.Bool("q", false, "print errors only, not warnings")
	interpreter := fl.String("python", m.envOr("UPDRAFT_PYTHON", "python3"), "interpreter that compiles the Python callables' files (skipped when there is none)")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags validate [-q] [--python PATH] PATH...")
		return 2
	}
	results, err := loadPaths(fl.Args())
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	var nDAGs, nFiles, nErrors, nWarnings int
	if probs, err := compilePython(*interpreter, pythonFiles(fl.Args(), results)); err != nil {
		fmt.Fprintf(m.Stderr, "updraft: the Python callables' files were not compiled: %v\n", err)
	} else {
		for _, p := range probs {
			nErrors++
			fmt.Fprintln(m.Stdout, p)
		}
	}
	for _, res := range results {
		nDAGs += len(res.DAGs)
		nFiles += len(res.Files)
		for _, p := range res.Problems() {
			if p.Severity == dags.SeverityError {
				nErrors++
			} else {
				nWarnings++
				if *quiet {
					continue
				}
			}
			fmt.Fprintln(m.Stdout, p)
		}
	}
	fmt.Fprintf(m.Stderr, "%d DAGs in %d files: %d errors, %d warnings\n", nDAGs, nFiles, nErrors, nWarnings)
	if nErrors > 0 {
		return 1
	}
	return 0
}

type dagSummary struct {
	ID          string   `json:"dag_id"`
	Schedule    string   `json:"schedule"`
	Timezone    string   `json:"timezone"`
	StartDate   string   `json:"start_date,omitempty"`
	Catchup     bool     `json:"catchup"`
	Tasks       []string `json:"tasks"`
	File        string   `json:"fileloc"`
	Tags        []string `json:"tags"`
	Hash        string   `json:"hash"`
	Description string   `json:"description,omitempty"`
}

func (m Main) dagsList(args []string) int {
	fl := flag.NewFlagSet("dags list", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	asJSON := fl.Bool("json", false, "print JSON")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags list [--json] PATH...")
		return 2
	}
	results, err := loadPaths(fl.Args())
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	var list []dagSummary
	errors := 0
	for _, res := range results {
		errors += len(res.Problems().Errors())
		for _, d := range res.DAGs {
			s := dagSummary{ID: d.ID, Schedule: d.Schedule.Summary(), Timezone: d.Location.String(), Catchup: d.Catchup,
				File: d.File, Tags: d.Tags, Hash: d.Hash, Description: d.Description, Tasks: []string{}}
			if s.Tags == nil {
				s.Tags = []string{}
			}
			if d.StartDate != nil {
				s.StartDate = d.StartDate.Format(time.RFC3339)
			}
			for _, t := range d.Tasks {
				s.Tasks = append(s.Tasks, t.ID)
			}
			list = append(list, s)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	if *asJSON {
		enc := json.NewEncoder(m.Stdout)
		enc.SetIndent("", "  ")
		if list == nil {
			list = []dagSummary{}
		}
		_ = enc.Encode(list)
	} else {
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "DAG\tSCHEDULE\tTASKS\tFILE")
		for _, s := range list {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", s.ID, s.Schedule, len(s.Tasks), s.File)
		}
		w.Flush()
	}
	if errors > 0 {
		fmt.Fprintf(m.Stderr, "%d errors; run \"updraft dags validate\" for details\n", errors)
	}
	return 0
}

func (m Main) dagsNext(args []string) int {
	fl := flag.NewFlagSet("dags next", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	n := fl.Int("n", 5, "how many runs")
	after := fl.String("after", "", "list runs due after this RFC 3339 time (default: now)")
	if err := fl.Parse(args); err != nil || fl.NArg() != 2 {
		fmt.Fprintln(m.Stderr, "usage: updraft dags next [-n N] [--after TIME] PATH DAG_ID")
		return 2
	}
	d, code := m.findDAG(fl.Arg(0), fl.Arg(1))
	if d == nil {
		return code
	}
	now := time.Now()
	if *after != "" {
		t, err := time.Parse(time.RFC3339, *after)
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft: --after:", err)
			return 2
		}
		now = t
	}
	runs := dags.RunsBetween(d, now, now.AddDate(100, 0, 0), *n)
	if len(runs) == 0 {
		fmt.Fprintf(m.Stdout, "%s (%s): no scheduled runs\n", d.ID, d.Schedule.Summary())
		return 0
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RUN AFTER\tDATA INTERVAL START\tDATA INTERVAL END")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.RunAfter.Format(time.RFC3339), r.Interval.Start.Format(time.RFC3339), r.Interval.End.Format(time.RFC3339))
	}
	w.Flush()
	return 0
}

func (m Main) findDAG(path, id string) (*dags.DAG, int) {
	results, err := loadPaths([]string{path})
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return nil, 2
	}
	if d := results[0].DAG(id); d != nil {
		return d, 0
	}
	for _, p := range results[0].Problems().Errors() {
		if p.DAG == id {
			fmt.Fprintln(m.Stderr, p)
		}
	}
	fmt.Fprintf(m.Stderr, "updraft: no loadable DAG %q under %s\n", id, path)
	return nil, 1
}

// varFlags collects repeated --var KEY=VALUE flags.
type varFlags map[string]string

func (v varFlags) String() string { return "" }
func (v varFlags) Set(s string) error {
	k, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("expected KEY=VALUE, got %q", s)
	}
	v[k] = val
	return nil
}

func (m Main) tasksRender(args []string) int {
	fl := flag.NewFlagSet("tasks render", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	conf := fl.String("conf", "", "dag_run.conf as JSON (a manual run)")
	vars := varFlags{}
	fl.Var(vars, "var", "a Variable as KEY=VALUE (repeatable)")
	// Flags may follow the positional arguments.
	var pos []string
	rest := args
	for len(rest) > 0 {
		if err := fl.Parse(rest); err != nil {
			return 2
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		rest = fl.Args()[1:]
	}
	if len(pos) != 4 {
		fmt.Fprintln(m.Stderr, "usage: updraft tasks render PATH DAG_ID TASK_ID LOGICAL_DATE [--conf JSON] [--var K=V]...")
		return 2
	}
	d, code := m.findDAG(pos[0], pos[1])
	if d == nil {
		return code
	}
	t := d.Task(pos[2])
	if t == nil {
		fmt.Fprintf(m.Stderr, "updraft: DAG %s has no task %q\n", d.ID, pos[2])
		return 1
	}
	logical, err := parseDate(pos[3])
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft:", err)
		return 2
	}
	rc := dags.RunContext{DAG: d, RunType: "scheduled", LogicalDate: logical, TryNumber: 1}
	if *conf != "" {
		rc.RunType = "manual"
		if err := json.Unmarshal([]byte(*conf), &rc.Conf); err != nil {
			fmt.Fprintln(m.Stderr, "updraft: --conf:", err)
			return 2
		}
		rc.DataInterval = d.Schedule.InferManual(logical)
	} else if info, ok := dags.ScheduledRunAt(d, logical); ok {
		rc.DataInterval = info.Interval
	} else {
		rc.DataInterval = d.Schedule.InferManual(logical)
	}
	rc.RunID = dags.RunID(rc.RunType, logical)
	spec, err := dags.Render(t, rc, vars)
	if err != nil {
		return m.fail(err)
	}
	enc := json.NewEncoder(m.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(spec)
	return 0
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid date %q: use YYYY-MM-DD or RFC 3339", s)
}

// pythonFiles lists the Python files the loaded DAGs' callables are in,
// as paths on this machine.
func pythonFiles(paths []string, results []*dags.Result) []string {
	var out []string
	for i, res := range results {
		prefix := paths[i]
		if st, err := os.Stat(prefix); err == nil && !st.IsDir() {
			prefix = filepath.Dir(prefix)
		}
		for _, d := range res.DAGs {
			for _, t := range d.Tasks {
				if s, ok := t.Spec.(dags.PythonSpec); ok && s.File != "" {
					if f := filepath.Join(prefix, filepath.FromSlash(s.File)); !slices.Contains(out, f) {
						out = append(out, f)
					}
				}
			}
		}
	}
	return out
}

// compilePython compiles files as python3 -m py_compile would (nothing is
// run) and returns their syntax errors at file:line:col.
func compilePython(interpreter string, files []string) ([]dags.Problem, error) {
	if len(files) == 0 {
		return nil, nil
	}
	const check = `import json, sys
out = []
for f in sys.argv[1:]:
    try:
        with open(f, "rb") as src:
            compile(src.read(), f, "exec", dont_inherit=True)
    except SyntaxError as e:
        out.append({"file": f, "line": e.lineno or 0, "col": e.offset or 0, "msg": e.msg})
    except (OSError, ValueError) as e:
        out.append({"file": f, "line": 0, "col": 0, "msg": str(e)})
print(json.dumps(out))
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, interpreter, append([]string{"-I", "-c", check}, files...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", interpreter, err)
	}
	var found []struct {
		File      string `json:"file"`
		Line, Col int
		Msg       string `json:"msg"`
	}
	if err := json.Unmarshal(out, &found); err != nil {
		return nil, fmt.Errorf("%s: %w", interpreter, err)
	}
	var probs []dags.Problem
	for _, f := range found {
		probs = append(probs, dags.Problem{File: f.File, Line: f.Line, Col: f.Col, Severity: dags.SeverityError, Msg: "Python: " + f.Msg})
	}
	return probs, nil
}
