package dags

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"
)

// Folder keeps a DAG folder loaded: it loads it once, then reloads it
// whenever a file is added, removed or changed. It is safe for concurrent
// use; Current never blocks on a load in progress.
type Folder struct {
	fsys     fs.FS
	opts     Options
	interval time.Duration
	log      *slog.Logger

	mu       sync.RWMutex
	res      *Result
	loadedAt time.Time
	stamp    [32]byte
	onLoad   func()
}

// OnLoad registers a function called after each new load (for example to
// wake the scheduler). Call it before Run.
func (f *Folder) OnLoad(fn func()) { f.onLoad = fn }

// NewFolder returns a folder over fsys checked for changes every interval.
func NewFolder(fsys fs.FS, interval time.Duration, log *slog.Logger) *Folder {
	return &Folder{fsys: fsys, interval: interval, log: log, res: &Result{}}
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
	stamp := f.fingerprint()
	f.mu.RLock()
	same := !f.loadedAt.IsZero() && stamp == f.stamp
	f.mu.RUnlock()
	if same {
		return false
	}
	res := Load(f.fsys, f.opts)
	f.mu.Lock()
	f.res, f.loadedAt, f.stamp = res, time.Now(), stamp
	f.mu.Unlock()
	errs := res.Problems().Errors()
	f.log.Info("loaded DAG folder", "dags", len(res.DAGs), "files", len(res.Files), "errors", len(errs))
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
		}
	}
}

// fingerprint hashes every file's path, size and modification time.
func (f *Folder) fingerprint() [32]byte {
	h := sha256.New()
	_ = fs.WalkDir(f.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(h, "%s error %v\n", p, err)
			return nil
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			fmt.Fprintf(h, "%s %d %d\n", p, info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
