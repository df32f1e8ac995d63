package dags

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// DirFS returns the DAG folder at dir as the loader may read it: every
// name is resolved inside dir (a symbolic link is followed only when it
// stays inside dir; a link out of it, a loop of links or a path with ".."
// that leaves dir is refused), only regular files can be opened (a FIFO,
// a device or a socket is refused without being opened for reading), and
// no open blocks (files are opened non-blocking). For a git revision, dir
// is the published checkout of that revision.
//
// Directories reached through a link are not walked into.
func DirFS(dir string) fs.FS { return dirFS{dir: dir} }

type dirFS struct{ dir string }

var (
	_ fs.StatFS    = dirFS{}
	_ fs.ReadDirFS = dirFS{}
)

// root opens dir for one operation: files opened from it stay valid after
// it is closed, and nothing is held open between loads.
func (d dirFS) root() (*os.Root, error) { return os.OpenRoot(d.dir) }

func (d dirFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	r, err := d.root()
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	defer r.Close()
	info, err := r.Stat(name)
	if err != nil {
		return nil, d.explain(name, err)
	}
	if !info.IsDir() && !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: notRegular(info.Mode())}
	}
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, d.explain(name, err)
	}
	// The name may have been swapped between the check and the open.
	if info, err = f.Stat(); err != nil || !info.IsDir() && !info.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = notRegular(info.Mode())
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

func (d dirFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	r, err := d.root()
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	defer r.Close()
	info, err := r.Stat(name)
	if err != nil {
		return nil, d.explain(name, err)
	}
	return info, nil
}

func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := d.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir, ok := f.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := dir.ReadDir(-1)
	sortEntries(entries)
	return entries, err
}

func sortEntries(es []fs.DirEntry) {
	slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}

// stuckReads counts reads of a DAG folder that were abandoned because
// they took too long and have not ended yet. Safe for concurrent use.
type stuckReads struct{ n atomic.Int64 }

func (s *stuckReads) add(d int64) { s.n.Add(d) }

// count returns how many abandoned reads are still blocked.
func (s *stuckReads) count() int64 { return s.n.Load() }

// explain turns an error of os.Root into the reason a committer can act
// on: where a link leads when it leaves the folder, or that links loop.
func (d dirFS) explain(name string, err error) error {
	full := filepath.Join(d.dir, filepath.FromSlash(name))
	if errors.Is(err, syscall.ELOOP) {
		return &fs.PathError{Op: "open", Path: name, Err: errLinkLoop}
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return &fs.PathError{Op: "open", Path: name, Err: unwrapAll(err)}
	}
	// os.Root refuses a name that resolves outside the folder.
	if target, lerr := os.Readlink(full); lerr == nil {
		return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w: it links to %s", errOutside, target)}
	}
	if strings.Contains(err.Error(), "escapes") {
		return &fs.PathError{Op: "open", Path: name, Err: errOutside}
	}
	return &fs.PathError{Op: "open", Path: name, Err: unwrapAll(err)}
}

func unwrapAll(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var (
	errOutside  = errors.New("outside the DAG folder (links are followed only inside it)")
	errLinkLoop = errors.New("a loop of symbolic links")
	errTooLarge = errors.New("over the size limit")
	errTooSlow  = errors.New("could not be read in time")
)

func notRegular(m fs.FileMode) error {
	kind := "not a regular file"
	switch {
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO), not a regular file"
	case m&fs.ModeSocket != 0:
		kind = "a socket, not a regular file"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device, not a regular file"
	case m&fs.ModeDevice != 0:
		kind = "a device, not a regular file"
	case m&fs.ModeIrregular != 0:
		kind = "an irregular file"
	}
	return errors.New(kind)
}

// DefaultReadTimeout bounds how long one file of a DAG folder may take to
// read (a hung network mount, a file system that never answers).
const DefaultReadTimeout = 10 * time.Second

// readBounded reads a file of fsys the way the loader reads every file a
// DAG folder holds or a DAG names: only a regular file, at most limit
// bytes (counted as they are read: a file that grows, or is sparse, or
// claims another size, is cut off at limit+1 and refused), and within
// timeout. A read that does not finish in time is abandoned (its
// goroutine ends when the read does) and reported as errTooSlow; stuck,
// when set, counts such reads until they end.
func readBounded(fsys fs.FS, name string, limit int, timeout time.Duration, stuck *stuckReads) ([]byte, error) {
	if timeout <= 0 {
		timeout = DefaultReadTimeout
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := readLimited(fsys, name, limit)
		done <- result{data, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.data, r.err
	case <-t.C:
		if stuck != nil {
			stuck.add(1)
			go func() { <-done; stuck.add(-1) }()
		}
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w (%v)", errTooSlow, timeout)}
	}
}

func readLimited(fsys fs.FS, name string, limit int) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: notRegular(info.Mode())}
	}
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, int64(limit)+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: unwrapAll(err)}
	}
	if limit > 0 && len(data) > limit {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%w: more than %d bytes", errTooLarge, limit)}
	}
	return data, nil
}
