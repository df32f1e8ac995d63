package dags

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Folder keeps a DAG folder loaded: it loads it once, then reloads it
// whenever a file is added, removed or changed. It is safe for concurrent
// use; Current never blocks on a load in progress.
type Folder struct {
	src      Source
	opts     Options
	interval time.Duration
	log      *slog.Logger
	wake     chan struct{}

	loading   sync.Mutex   // one load at a time, so loads land in order
	loadStart atomic.Int64 // unix nanos when the load in progress began; 0 when none
	stuck     stuckReads
	mu        sync.RWMutex
	res       *Result
	loadedAt  time.Time
	stamp     [32]byte
	onLoad    func()
}

// OnLoad registers a function called after each new load (for example to
// wake the scheduler). Call it before Run.
func (f *Folder) OnLoad(fn func()) { f.onLoad = fn }

// Source yields the tree to load and the revision it is at ("" for a
// plain folder). A git sync returns the published revision's folder, which
// never changes once published, so a load never sees two revisions.
type Source func() (fsys fs.FS, revision string, err error)

// NewFolder returns a folder over fsys checked for changes every interval.
func NewFolder(fsys fs.FS, interval time.Duration, log *slog.Logger) *Folder {
	return NewSourceFolder(func() (fs.FS, string, error) { return fsys, "", nil }, interval, log)
}

// NewSourceFolder returns a folder over whatever src yields at each check.
func NewSourceFolder(src Source, interval time.Duration, log *slog.Logger) *Folder {
	f := &Folder{src: src, interval: interval, log: log, res: &Result{}, wake: make(chan struct{}, 1)}
	f.opts.stuck = &f.stuck
	return f
}

// Health says whether the folder loads as it should: it is degraded while
// reads of its files are blocked (abandoned after the read timeout, still
// not ended), while a load has taken much longer than any read may, or
// when the last load could not read a file in time. Safe for concurrent
// use; it never waits for a load.
func (f *Folder) Health() (ok bool, detail string) {
	if n := f.stuck.count(); n > 0 {
		return false, fmt.Sprintf("%d read(s) of DAG files are blocked (a file that never answers: a hung mount?)", n)
	}
	timeout := f.opts.ReadTimeout
	if timeout <= 0 {
		timeout = DefaultReadTimeout
	}
	if start := f.loadStart.Load(); start != 0 {
		if d := time.Since(time.Unix(0, start)); d > 3*timeout {
			return false, fmt.Sprintf("loading the DAG folder has taken %s so far", d.Round(time.Second))
		}
	}
	res, _ := f.Current()
	for _, fr := range res.Files {
		for _, p := range fr.Problems {
			if strings.Contains(p.Msg, errTooSlow.Error()) {
				return false, fmt.Sprintf("%s could not be read in time", fr.Path)
			}
		}
	}
	return true, ""
}

// Trigger asks Run for a check now (a new git revision was published).
func (f *Folder) Trigger() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Current returns the latest load and when it happened (zero before the first).
func (f *Folder) Current() (*Result, time.Time) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.res, f.loadedAt
}

// Refresh reloads the folder if anything in it changed since the last load
// and reports whether it did.
func (f *Folder) Refresh() bool {
	f.loading.Lock()
	defer f.loading.Unlock()
	f.loadStart.Store(time.Now().UnixNano())
	defer f.loadStart.Store(0)
	fsys, rev, err := f.src()
	if err != nil {
		f.log.Warn("DAG folder not available yet", "err", err)
		return false
	}
	stamp := fingerprint(fsys, rev)
	f.mu.RLock()
	same, prev := !f.loadedAt.IsZero() && stamp == f.stamp, f.res
	f.mu.RUnlock()
	if same {
		return false
	}
	res := Load(fsys, f.opts)
	res.Revision = rev
	for _, d := range res.DAGs {
		d.Revision = rev
	}
	keepLastGood(prev, res)
	f.mu.Lock()
	f.res, f.loadedAt, f.stamp = res, time.Now(), stamp
	f.mu.Unlock()
	errs := res.Problems().Errors()
	f.log.Info("loaded DAG folder", "revision", rev, "dags", len(res.DAGs), "files", len(res.Files), "errors", len(errs))
	for _, p := range errs {
		f.log.Warn("DAG import error", "file", p.File, "line", p.Line, "dag_id", p.DAG, "task_id", p.Task, "error", p.Msg)
	}
	if f.onLoad != nil {
		f.onLoad()
	}
	return true
}

// Run refreshes the folder every interval until ctx ends.
func (f *Folder) Run(ctx context.Context) error {
	f.Refresh()
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.Refresh()
		case <-f.wake:
			f.Refresh()
		}
	}
}

// keepLastGood carries over, into next, the DAGs that a file defined in
// prev and no longer yields because it now has errors: a broken commit
// never takes a running DAG away. Its import errors still show. A file
// that is gone takes its DAGs with it (they become inactive).
func keepLastGood(prev, next *Result) {
	files := make(map[string]*FileResult, len(next.Files))
	for i := range next.Files {
		files[next.Files[i].Path] = &next.Files[i]
	}
	added := false
	for _, pf := range prev.Files {
		nf := files[pf.Path]
		if nf == nil || len(nf.Problems.Errors()) == 0 {
			continue
		}
		for _, id := range append(append([]string{}, pf.DAGs...), pf.Kept...) {
			if next.DAG(id) != nil {
				continue
			}
			if d := prev.DAG(id); d != nil {
				next.DAGs = append(next.DAGs, d)
				nf.Kept = append(nf.Kept, id)
				added = true
			}
		}
	}
	if added {
		sort.Slice(next.DAGs, func(i, j int) bool { return next.DAGs[i].ID < next.DAGs[j].ID })
	}
}

// fingerprint hashes the revision and every file's path, size and
// modification time.
func fingerprint(fsys fs.FS, rev string) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "revision %s\n", rev)
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(h, "%s error %v\n", p, err)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		// Stat follows a link (inside the folder), so a changed target is seen.
		if info, err := fs.Stat(fsys, p); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "%s error %v\n", p, err)
		}
		return nil
	})
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ReadFile returns a file of the folder as it is now (for showing a DAG's
// source) and the revision it is at. A path outside the folder, or not a
// DAG file of the latest load, is refused.
func (f *Folder) ReadFile(path string) ([]byte, string, error) {
	f.mu.RLock()
	known := false
	for _, fr := range f.res.Files {
		known = known || fr.Path == path
	}
	f.mu.RUnlock()
	if !known || !fs.ValidPath(path) {
		return nil, "", fmt.Errorf("%s: not a DAG file: %w", path, fs.ErrNotExist)
	}
	fsys, rev, err := f.src()
	if err != nil {
		return nil, "", err
	}
	b, err := readBounded(fsys, path, f.limits().MaxFileBytes, f.opts.ReadTimeout, &f.stuck)
	return b, rev, err
}

func (f *Folder) limits() Limits {
	if f.opts.Limits == (Limits{}) {
		return DefaultLimits
	}
	return f.opts.Limits
}
