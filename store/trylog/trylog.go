// Package trylog owns where try logs live. An executor writes a try's log
// to a file on the replica running it. When several replicas share a
// database, a Copier also copies what is new in each running try's file
// into the store every second, and the rest when the try ends, so every
// replica can show every log, live, without a shared volume. Open reads a
// log from whichever of the two holds more of it.
package trylog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"updraft/store"
)

// Key names one try of one task instance.
type Key struct {
	store.TIKey
	Try int
}

func (k Key) String() string { return fmt.Sprintf("%s#%d", k.TIKey, k.Try) }

// chunkSize bounds one copied chunk (one row in the store).
const chunkSize = 256 << 10

// Copier copies the logs of this replica's running tries into the store.
// A nil *Copier copies nothing.
type Copier struct {
	st       *store.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	watched map[Key]*watch
	ended   map[Key]time.Time // recently finished: a late Watch is ignored
}

type watch struct {
	path   string
	mu     sync.Mutex // one copy at a time
	copied int64      // bytes of the file already in the store, at the same offsets
}

// NewCopier returns a Copier writing to st; Run must be running for
// running tries' logs to be copied before they end.
func NewCopier(st *store.Store, log *slog.Logger) *Copier {
	return &Copier{st: st, log: log, interval: time.Second,
		watched: map[Key]*watch{}, ended: map[Key]time.Time{}}
}

// Watch starts copying a running try's log file. restarted says that the
// executor writes the log again from its start (it adopted the try and
// reads its whole output again): the copy is then replaced. Otherwise the
// file goes on where the copy ends.
func (c *Copier) Watch(ctx context.Context, k Key, path string, restarted bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	_, ended := c.ended[k]
	c.mu.Unlock()
	if ended {
		return
	}
	w := &watch{path: path}
	if restarted {
		if err := c.st.DeleteLog(ctx, k.TIKey, k.Try); err != nil {
			c.log.Warn("log copy not reset", "try", k.String(), "err", err)
		}
	} else {
		n, err := c.st.LogSize(ctx, k.TIKey, k.Try)
		if err != nil {
			c.log.Warn("log copy size unknown", "try", k.String(), "err", err)
		}
		w.copied = n
	}
	c.mu.Lock()
	c.watched[k] = w
	c.mu.Unlock()
}

// WatchNew starts copying the log of a try that is only starting: nothing
// of it is in the store yet, so no query is needed.
func (c *Copier) WatchNew(k Key, path string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ended := c.ended[k]; !ended {
		c.watched[k] = &watch{path: path}
	}
}

// Finish copies what is left of a try's log and stops watching it. It is
// called before the try's end is recorded, so whoever reads the ended try
// (an alert on another replica) finds its whole log.
func (c *Copier) Finish(ctx context.Context, k Key) {
	if c == nil {
		return
	}
	c.mu.Lock()
	w := c.watched[k]
	delete(c.watched, k)
	c.ended[k] = time.Now()
	c.mu.Unlock()
	if w != nil {
		c.copy(ctx, k, w)
	}
}

// Noted puts a line of updraft's own, already appended to a try's file
// (executor.AppendLogLine), into the copy too when nobody watches the try:
// it ended without its executor, or on another replica. A watched try's
// line goes with the rest of its file.
func (c *Copier) Noted(ctx context.Context, k Key, text string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	w := c.watched[k]
	c.mu.Unlock()
	if w != nil {
		return
	}
	n, err := c.st.LogSize(ctx, k.TIKey, k.Try)
	if err == nil {
		err = c.st.AppendLog(ctx, k.TIKey, k.Try, n, []byte(text))
	}
	if err != nil {
		c.log.Warn("note not copied to the try's log", "try", k.String(), "err", err)
	}
}

// Run copies every watched log each second until ctx ends.
func (c *Copier) Run(ctx context.Context) {
	if c == nil {
		return
	}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.copyAll(ctx)
		}
	}
}

func (c *Copier) copyAll(ctx context.Context) {
	c.mu.Lock()
	type item struct {
		k Key
		w *watch
	}
	items := make([]item, 0, len(c.watched))
	for k, w := range c.watched {
		items = append(items, item{k, w})
	}
	for k, at := range c.ended {
		if time.Since(at) > 10*time.Minute {
			delete(c.ended, k)
		}
	}
	c.mu.Unlock()
	for _, it := range items {
		c.copy(ctx, it.k, it.w)
	}
}

// copy appends what the file has beyond what the store has.
func (c *Copier) copy(ctx context.Context, k Key, w *watch) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := os.Open(w.path)
	if err != nil {
		return // nothing written yet
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return
	}
	if info.Size() < w.copied { // the file was started over
		if err := c.st.DeleteLog(ctx, k.TIKey, k.Try); err != nil {
			c.log.Warn("log copy not reset", "try", k.String(), "err", err)
			return
		}
		w.copied = 0
	}
	if w.copied >= info.Size() {
		return
	}
	buf := make([]byte, min(chunkSize, info.Size()-w.copied))
	for w.copied < info.Size() {
		n, err := f.ReadAt(buf[:min(int64(chunkSize), info.Size()-w.copied)], w.copied)
		if n > 0 {
			if err := c.st.AppendLog(ctx, k.TIKey, k.Try, w.copied, buf[:n]); err != nil {
				c.log.Warn("log not copied to the store", "try", k.String(), "err", err)
				return
			}
			w.copied += int64(n)
		}
		if err != nil && !errors.Is(err, io.EOF) || n == 0 {
			return
		}
	}
}

// Log is one try's log open for reading.
type Log struct {
	f    *os.File // the local file, when it holds at least as much as the copy
	st   *store.Store
	k    store.TIKey
	try  int
	Size int64
}

// Open opens a try's log where most of it is: the local file, or the copy
// in the store (another replica runs or ran the try). A log nobody wrote
// yet is empty.
func Open(ctx context.Context, st *store.Store, t store.Try) (*Log, error) {
	l := &Log{st: st, k: t.TIKey, try: t.TryNumber}
	copied, err := st.LogSize(ctx, t.TIKey, t.TryNumber)
	if err != nil {
		return nil, fmt.Errorf("log copy: %w", err)
	}
	l.Size = copied
	if t.LogPath == "" {
		return l, nil
	}
	f, err := os.Open(t.LogPath)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	info, err := f.Stat()
	if err != nil || info.Size() < copied {
		f.Close()
		return l, nil
	}
	l.f, l.Size = f, info.Size()
	return l, nil
}

// Read returns up to n bytes from offset (fewer at the end).
func (l *Log) Read(ctx context.Context, offset, n int64) ([]byte, error) {
	if offset >= l.Size || n <= 0 {
		return nil, nil
	}
	n = min(n, l.Size-offset)
	if l.f == nil {
		data, _, err := l.st.ReadLog(ctx, l.k, l.try, offset, n)
		return data, err
	}
	buf := make([]byte, n)
	m, err := l.f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

// Close releases the local file.
func (l *Log) Close() error {
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
