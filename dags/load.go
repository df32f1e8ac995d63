package dags

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options tune loading. The zero value uses DefaultLimits and the wall clock.
type Options struct {
	Limits Limits
	// Now anchors relative start dates ("2 days"); zero means time.Now().
	Now time.Time
	// ReadTimeout bounds the read of each file (DefaultReadTimeout when
	// zero): a file that cannot be read in time is an import error.
	ReadTimeout time.Duration

	stuck *stuckReads // reads abandoned by ReadTimeout, while they last
}

// FileResult is what one file yielded: the ids of the DAGs it defines that
// loaded, and every problem found in it.
type FileResult struct {
	Path     string   `json:"path"`
	DAGs     []string `json:"dag_ids"`
	Problems Problems `json:"problems"`
	Hash     string   `json:"hash"` // sha256 of the file's bytes
	// Kept lists DAGs this file defined in an earlier load that still
	// serve from that load because the file now has errors.
	Kept []string `json:"kept_dag_ids,omitempty"`
}

// Result is a loaded DAG folder.
type Result struct {
	DAGs  []*DAG       // loaded DAGs, sorted by id
	Files []FileResult // every DAG file, sorted by path
	// Revision is the git commit the files came from ("" for a folder).
	Revision string
}

// Problems returns every problem of every file, sorted.
func (r *Result) Problems() Problems {
	var out Problems
	for _, f := range r.Files {
		out = append(out, f.Problems...)
	}
	out.Sort()
	return out
}

// DAG returns the DAG with the given id, or nil.
func (r *Result) DAG(id string) *DAG {
	i := sort.Search(len(r.DAGs), func(i int) bool { return r.DAGs[i].ID >= id })
	if i < len(r.DAGs) && r.DAGs[i].ID == id {
		return r.DAGs[i]
	}
	return nil
}

// IsDAGFile reports whether name is a file the loader reads as DAGs
// (.yaml/.yml, not a defaults file).
func IsDAGFile(name string) bool {
	base := path.Base(name)
	ext := path.Ext(base)
	return (ext == ".yaml" || ext == ".yml") && !isDefaultsFile(base) && !strings.HasPrefix(base, ".")
}

func isDefaultsFile(base string) bool { return base == "defaults.yml" || base == "defaults.yaml" }

// Load reads every DAG file below the root of fsys, as dag-factory does:
// .yaml/.yml files (hidden files and folders skipped, .airflowignore
// honoured), each merged with the defaults.yml files of its folder and the
// folders above it (closest wins) and its own default: block. Problems never
// stop the load: a bad file or DAG is reported and the others load.
func Load(fsys fs.FS, opts Options) *Result {
	l := newLoader(fsys, opts)
	var files []string
	ignores := map[string][]*regexp.Regexp{}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			l.res.Files = append(l.res.Files, FileResult{Path: p, Problems: Problems{{File: p, Msg: fmt.Sprintf("cannot read: %v", err)}}})
			return nil
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			ignores[p] = l.readIgnore(p)
		}
		if ignored(ignores, p) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && IsDAGFile(p) {
			files = append(files, p)
		}
		return nil
	})
	l.files(files)
	return l.finish()
}

// LoadFiles loads the named files of fsys only (for "dags validate FILE").
// Defaults files of their folders still apply.
func LoadFiles(fsys fs.FS, names []string, opts Options) *Result {
	l := newLoader(fsys, opts)
	l.files(names)
	return l.finish()
}

// files loads files in parallel: each file is independent once the
// defaults of its folders are known, and those are read first.
func (l *loader) files(names []string) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	for _, name := range names {
		l.folderDefaults(path.Dir(name))
	}
	results := make([]fileOutcome, len(names))
	workers := min(runtime.GOMAXPROCS(0), len(names))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = l.file(names[i])
			}
		}()
	}
	for i := range names {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range results {
		l.res.Files = append(l.res.Files, r.res)
		for _, d := range r.dags {
			l.pending[d.File+"\x00"+d.ID] = d
		}
	}
}

type fileOutcome struct {
	res  FileResult
	dags []*DAG
}

type loader struct {
	fsys     fs.FS
	opts     Options
	res      *Result
	defaults map[string]*val // folder -> merged defaults of that folder and above
	pending  map[string]*DAG // file NUL id -> loaded DAG, until duplicates across files are resolved
}

func newLoader(fsys fs.FS, opts Options) *loader {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	return &loader{fsys: fsys, opts: opts, res: &Result{}, defaults: map[string]*val{}, pending: map[string]*DAG{}}
}

func (l *loader) finish() *Result {
	// A DAG id defined in two files keeps the first file's DAG (by path).
	seen := map[string]string{}
	var dags []*DAG
	for i := range l.res.Files {
		f := &l.res.Files[i]
		kept := f.DAGs[:0]
		for _, id := range f.DAGs {
			d := l.find(id, f.Path)
			if other, dup := seen[id]; dup {
				f.Problems = append(f.Problems, Problem{File: f.Path, Line: d.Line, DAG: id,
					Msg: fmt.Sprintf("DAG id already defined in %s; this definition is ignored", other)})
				continue
			}
			seen[id] = f.Path
			kept = append(kept, id)
			dags = append(dags, d)
		}
		f.DAGs = kept
		f.Problems = dedupe(f.Problems)
		f.Problems.Sort()
	}
	sort.Slice(l.res.Files, func(i, j int) bool { return l.res.Files[i].Path < l.res.Files[j].Path })
	sort.Slice(dags, func(i, j int) bool { return dags[i].ID < dags[j].ID })
	l.res.DAGs = dags
	return l.res
}

func (l *loader) find(id, file string) *DAG { return l.pending[file+"\x00"+id] }

// file loads one DAG file. It only reads the loader's state (folder
// defaults are resolved beforehand), so files load concurrently.
func (l *loader) file(name string) (out fileOutcome) {
	res := &out.res
	res.Path = name
	data, err := l.read(name)
	if err != nil {
		res.Problems = Problems{{File: name, Msg: l.readProblem(err)}}
		return out
	}
	sum := sha256.Sum256(data)
	res.Hash = hex.EncodeToString(sum[:])
	root, p := parseYAML(name, data, l.opts.Limits)
	if p != nil {
		res.Problems = Problems{*p}
		return out
	}
	if root.isNull() {
		res.Problems = Problems{{File: name, Line: 1, Severity: SeverityWarning, Msg: "file is empty: no DAGs"}}
		return out
	}
	if root.kind != kindMap {
		res.Problems = Problems{{File: name, Line: root.line, Col: root.col,
			Msg: fmt.Sprintf("a DAG file is a mapping of DAG ids to DAG settings, got %s", root.describe())}}
		return out
	}
	folderDefaults := l.folderDefaults(path.Dir(name))
	fileDefault := root.get("default")
	if fileDefault != nil && !fileDefault.isNull() && fileDefault.kind != kindMap {
		res.Problems = append(res.Problems, Problem{File: name, Line: fileDefault.line, Col: fileDefault.col,
			Msg: fmt.Sprintf("default: expected a mapping of DAG settings, got %s", fileDefault.describe())})
		fileDefault = nil
	}
	if fileDefault != nil {
		reportDups(report{probs: &res.Problems}, fileDefault, "default")
	}
	defaults := mergeInto(normaliseKeyed(fileDefault), folderDefaults)
	for _, dup := range root.dups {
		res.Problems = append(res.Problems, Problem{File: name, Line: dup.line, Col: dup.col, DAG: dup.str,
			Msg: "DAG id defined twice in this file; the first definition is ignored"})
	}
	for i, k := range root.keys {
		id, spec := k.str, root.vals[i]
		switch id {
		case "default":
			continue
		case "task_groups":
			res.Problems = append(res.Problems, Problem{File: name, Line: k.line, Col: k.col, Severity: SeverityWarning,
				Msg: "top-level task_groups is ignored: put task_groups inside a DAG"})
			continue
		case "datasets":
			if spec.kind == kindSeq {
				res.Problems = append(res.Problems, Problem{File: name, Line: k.line, Col: k.col,
					Msg: "this is a dag-factory datasets file: " + errDatasets.Error()})
				continue
			}
		}
		r := report{probs: &res.Problems, dag: id}
		before := len(res.Problems)
		reportDups(r, spec, "")
		if Problems(res.Problems[before:]).HasErrors() {
			continue
		}
		merged := spec
		if defaults != nil || spec.kind == kindMap {
			merged = mergeInto(normaliseKeyed(spec), defaults)
		}
		if d := decodeDAG(id, k, merged, &res.Problems, l.opts.Now, l.read); d != nil {
			res.DAGs = append(res.DAGs, id)
			out.dags = append(out.dags, d)
		}
	}
	return out
}

// folderDefaults merges defaults.yml/defaults.yaml from the root down to dir.
func (l *loader) folderDefaults(dir string) *val {
	if v, ok := l.defaults[dir]; ok {
		return v
	}
	var parent *val
	if dir != "." && dir != "/" && dir != "" {
		parent = l.folderDefaults(path.Dir(dir))
	}
	merged := parent
	for _, base := range []string{"defaults.yml", "defaults.yaml"} {
		name := path.Join(dir, base)
		data, err := l.read(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		res := FileResult{Path: name}
		if err != nil {
			res.Problems = Problems{{File: name, Msg: l.readProblem(err)}}
			l.res.Files = append(l.res.Files, res)
			break
		}
		sum := sha256.Sum256(data)
		res.Hash = hex.EncodeToString(sum[:])
		v, p := parseYAML(name, data, l.opts.Limits)
		switch {
		case p != nil:
			res.Problems = Problems{*p}
		case v.isNull():
		case v.kind != kindMap:
			res.Problems = Problems{{File: name, Line: v.line, Col: v.col,
				Msg: fmt.Sprintf("a defaults file is a mapping of DAG settings, got %s", v.describe())}}
		default:
			reportDups(report{probs: &res.Problems}, v, "default")
			merged = mergeInto(normaliseKeyed(v), merged)
		}
		l.res.Files = append(l.res.Files, res)
		break
	}
	l.defaults[dir] = merged
	return merged
}

// normaliseKeyed returns a copy of a DAG mapping whose tasks and
// task_groups lists are turned into mappings keyed by id, so defaults merge
// into them task by task. Lists that cannot be keyed are left as they are
// for the decoder to report.
func normaliseKeyed(v *val) *val {
	if v == nil || v.kind != kindMap {
		return v
	}
	out := v.shallow()
	for _, key := range [][2]string{{"tasks", "task_id"}, {"task_groups", "group_name"}} {
		list := out.get(key[0])
		if list == nil || list.kind != kindSeq {
			continue
		}
		m := &val{file: list.file, line: list.line, col: list.col, kind: kindMap}
		ok := true
		for _, item := range list.items {
			id := item.get(key[1])
			if item.kind != kindMap || id == nil || id.kind != kindScalar || m.keyNode(id.str) != nil {
				ok = false
				break
			}
			m.keys = append(m.keys, id)
			m.vals = append(m.vals, item)
		}
		if ok {
			out.set(out.keyNode(key[0]), m)
		}
	}
	return out
}

// reportDups reports keys written twice below v: an error for task and
// group ids (one of the two would silently vanish), a warning elsewhere
// (the last wins, as with PyYAML).
func reportDups(r report, v *val, parent string) {
	if v == nil {
		return
	}
	switch v.kind {
	case kindMap:
		for _, dup := range v.dups {
			switch parent {
			case "tasks":
				r.errf(dup, "duplicate task_id %q", dup.str)
			case "task_groups":
				r.errf(dup, "duplicate group_name %q", dup.str)
			default:
				r.warnf(dup, "key %q is written twice; the last one wins", dup.str)
			}
		}
		for i, k := range v.keys {
			reportDups(r, v.vals[i], k.str)
		}
	case kindSeq:
		for _, item := range v.items {
			reportDups(r, item, "")
		}
	}
}

// dedupe drops problems repeated at the same place with the same message
// (a bad default_args entry is reported once, not once per task).
func dedupe(ps Problems) Problems {
	seen := map[string]bool{}
	out := ps[:0]
	for _, p := range ps {
		key := fmt.Sprintf("%s:%d:%d:%d:%s", p.File, p.Line, p.Col, p.Severity, p.Msg)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, p)
	}
	return out
}

// read reads a file of the folder: the DAG files, defaults files,
// .airflowignore and every file a DAG names (doc_md_file_path, SQL
// files). Only regular files, within the size limit counted as bytes
// are read, and within the read timeout (see readBounded).
func (l *loader) read(name string) ([]byte, error) {
	return readBounded(l.fsys, name, l.opts.Limits.MaxFileBytes, l.opts.ReadTimeout, l.opts.stuck)
}

// readProblem says why a file could not be read, for its import error.
func (l *loader) readProblem(err error) string {
	if errors.Is(err, errTooLarge) {
		return fmt.Sprintf("file is more than %d bytes, over the %d byte limit for DAG files", l.opts.Limits.MaxFileBytes, l.opts.Limits.MaxFileBytes)
	}
	return "cannot read: " + unwrapAll(err).Error()
}

// readIgnore reads dir/.airflowignore: one regular expression per line,
// matched against paths relative to dir (Airflow's default syntax).
func (l *loader) readIgnore(dir string) []*regexp.Regexp {
	data, err := l.read(path.Join(dir, ".airflowignore"))
	if err != nil {
		return nil
	}
	var out []*regexp.Regexp
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if re, err := regexp.Compile(line); err == nil {
			out = append(out, re)
		}
	}
	return out
}

func ignored(ignores map[string][]*regexp.Regexp, p string) bool {
	for dir, res := range ignores {
		rel := p
		if dir != "." {
			if !strings.HasPrefix(p, dir+"/") {
				continue
			}
			rel = strings.TrimPrefix(p, dir+"/")
		}
		for _, re := range res {
			if re.MatchString(rel) {
				return true
			}
		}
	}
	return false
}
