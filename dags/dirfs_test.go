package dags

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"
)

const goodDAG = "good:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"

func dagNamed(id string) string {
	return id + ":\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"
}

// hostile is one thing a committer (or whoever writes the DAG folder) may
// put there; make creates it as dags/x.yaml (or whatever it names) below
// root, with dags/ the DAG folder.
type hostile struct {
	name string
	make func(t *testing.T, root string)
	want string // in the import error of dags/x.yaml
	// asNobody: the case means something only to a process without
	// privileges (root reads a file without read permission).
	asNobody bool
}

func hostileFolders() []hostile {
	link := func(target string) func(*testing.T, string) {
		return func(t *testing.T, root string) {
			must(t, os.Symlink(target, filepath.Join(root, "dags", "x.yaml")))
		}
	}
	return []hostile{
		{name: "link to /proc/self/environ", make: link("/proc/self/environ"), want: "outside the DAG folder"},
		{name: "link to /dev/zero", make: link("/dev/zero"), want: "outside the DAG folder"},
		{name: "link to a DAG file outside the root", make: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "outside.yaml"), []byte(dagNamed("outside")), 0o644))
			link("../outside.yaml")(t, root)
		}, want: "outside the DAG folder"},
		{name: "link to the database beside the folder", make: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "updraft.db"), []byte("SQLite format 3\x00secret"), 0o600))
			link(filepath.Join(root, "updraft.db"))(t, root)
		}, want: "outside the DAG folder"},
		{name: "FIFO", make: func(t *testing.T, root string) {
			must(t, syscall.Mkfifo(filepath.Join(root, "dags", "x.yaml"), 0o644))
		}, want: "named pipe"},
		{name: "link to a FIFO inside the folder", make: func(t *testing.T, root string) {
			must(t, syscall.Mkfifo(filepath.Join(root, "dags", "pipe"), 0o644))
			link("pipe")(t, root)
		}, want: "named pipe"},
		{name: "socket", make: func(t *testing.T, root string) {
			// A socket path is limited to about 100 bytes: bind from inside.
			wd, _ := os.Getwd()
			must(t, os.Chdir(filepath.Join(root, "dags")))
			defer os.Chdir(wd)
			l, err := net.Listen("unix", "x.yaml")
			must(t, err)
			t.Cleanup(func() { l.Close() })
		}, want: "socket"},
		{name: "sparse 4 GB file", make: func(t *testing.T, root string) {
			f, err := os.Create(filepath.Join(root, "dags", "x.yaml"))
			must(t, err)
			must(t, f.Truncate(4<<30))
			must(t, f.Close())
		}, want: "over the 1048576 byte limit"},
		{name: "loop of links", make: func(t *testing.T, root string) {
			must(t, os.Symlink("y.yaml", filepath.Join(root, "dags", "x.yaml")))
			must(t, os.Symlink("x.yaml", filepath.Join(root, "dags", "y.yaml")))
		}, want: "loop of symbolic links"},
		{name: "file without read permission", asNobody: true, make: func(t *testing.T, root string) {
			must(t, os.WriteFile(filepath.Join(root, "dags", "x.yaml"), []byte(dagNamed("unreadable")), 0o000))
		}, want: "permission denied"},
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// loadHostile builds a DAG folder holding a good DAG file and one hostile
// entry, loads it, and checks the hostile file's import error and that
// the good DAG still loaded.
func loadHostile(t *testing.T, h hostile) {
	root := t.TempDir()
	must(t, os.Chmod(root, 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "dags"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "dags", "good.yaml"), []byte(goodDAG), 0o644))
	h.make(t, root)
	res := Load(DirFS(filepath.Join(root, "dags")), Options{ReadTimeout: 5 * time.Second})
	if res.DAG("good") == nil {
		t.Errorf("the good DAG did not load: %v", res.Problems())
	}
	var got []string
	for _, p := range res.Problems() {
		if p.File == "x.yaml" {
			got = append(got, p.Msg)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0], h.want) {
		t.Errorf("x.yaml: want one import error with %q, got %q (all: %v)", h.want, got, res.Problems())
	}
	if len(res.DAGs) != 1 {
		t.Errorf("only the good DAG may load, got %d DAGs", len(res.DAGs))
	}
}

func TestHostileDAGFolders(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, h := range hostileFolders() {
		t.Run(h.name, func(t *testing.T) {
			if h.asNobody && os.Geteuid() == 0 {
				runAsNobody(t, "TestHostileDAGFoldersUnprivileged/"+strings.ReplaceAll(h.name, " ", "_"))
				return
			}
			loadHostile(t, h)
		})
	}
}

// TestHostileDAGFoldersUnprivileged runs the cases that need a process
// without privileges; TestHostileDAGFolders starts it as nobody when the
// tests run as root (as in CI).
func TestHostileDAGFoldersUnprivileged(t *testing.T) {
	if os.Getenv("UPDRAFT_TEST_AS_NOBODY") == "" {
		t.Log("started as nobody by TestHostileDAGFolders when the tests run as root; covered there otherwise")
		return
	}
	for _, h := range hostileFolders() {
		if h.asNobody {
			t.Run(h.name, func(t *testing.T) { loadHostile(t, h) })
		}
	}
}

// runAsNobody runs one test of this binary as the user nobody: the test
// binary is copied where nobody can run it.
func runAsNobody(t *testing.T, test string) {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Chmod(filepath.Dir(dir), 0o755))
	must(t, os.Chown(dir, 65534, 65534))
	bin := filepath.Join(dir, "dags.test")
	src, err := os.Open(os.Args[0])
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	must(t, dst.Close())
	cmd := exec.Command(bin, "-test.run=^"+strings.ReplaceAll(test, "/", "$/^")+"$", "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"UPDRAFT_TEST_AS_NOBODY=1", "TMPDIR=" + dir, "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

func TestLinksInsideTheFolderAreFollowed(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "shared"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "team"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "shared", "common.yaml"), []byte(dagNamed("common")), 0o644))
	must(t, os.Symlink("../shared/common.yaml", filepath.Join(root, "team", "linked.yaml")))
	must(t, os.WriteFile(filepath.Join(root, "team", "doc.md"), []byte("# the doc"), 0o644))
	must(t, os.Symlink("doc.md", filepath.Join(root, "team", "doc-link.md")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(root, "team", "passwd.md")))
	must(t, os.WriteFile(filepath.Join(root, "team", "docs.yaml"), []byte(
		"documented:\n  start_date: 2024-01-01\n  doc_md_file_path: doc-link.md\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"+
			"leaky:\n  start_date: 2024-01-01\n  doc_md_file_path: passwd.md\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"), 0o644))
	res := Load(DirFS(root), Options{})
	if d := res.DAG("common"); d == nil || d.File != "shared/common.yaml" {
		t.Errorf("common: %+v", d)
	}
	// The link loads the same DAG again: a duplicate, reported as such.
	if !strings.Contains(res.Problems().Error(), "already defined in shared/common.yaml") {
		t.Errorf("linked copy: %v", res.Problems())
	}
	if d := res.DAG("documented"); d == nil || d.DocMD != "# the doc" {
		t.Errorf("doc through a link inside the folder: %+v", d)
	}
	if res.DAG("leaky") != nil || !strings.Contains(res.Problems().Error(), "outside the DAG folder") {
		t.Errorf("doc_md_file_path through a link to /etc/passwd: %v", res.Problems())
	}
	if strings.Contains(res.Problems().Error(), "root:") {
		t.Error("a problem shows the linked file's content")
	}
}

// blockingFS serves files whose reads never end until released.
type blockingFS struct {
	fstest.MapFS
	release chan struct{}
}

type blockingFile struct {
	fs.File
	release chan struct{}
}

func (b blockingFS) Open(name string) (fs.File, error) {
	f, err := b.MapFS.Open(name)
	if err != nil || !strings.HasPrefix(filepath.Base(name), "hung") {
		return f, err
	}
	return blockingFile{f, b.release}, nil
}

func (b blockingFile) Read(p []byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

func TestAReadThatHangsIsAnImportErrorAndDegradesHealth(t *testing.T) {
	defer goleak.VerifyNone(t)
	fsys := blockingFS{MapFS: fstest.MapFS{"good.yaml": {Data: []byte(goodDAG)}, "hung.yaml": {Data: []byte(dagNamed("hung"))}},
		release: make(chan struct{})}
	f := NewFolder(fsys, time.Hour, slog.New(slog.DiscardHandler))
	f.opts.ReadTimeout = 50 * time.Millisecond
	if !f.Refresh() {
		t.Fatal("not loaded")
	}
	res, _ := f.Current()
	if res.DAG("good") == nil {
		t.Fatalf("good DAG not loaded: %v", res.Problems())
	}
	if ps := res.Problems().Error(); !strings.Contains(ps, "hung.yaml") || !strings.Contains(ps, "could not be read in time") {
		t.Fatalf("problems: %s", ps)
	}
	if ok, detail := f.Health(); ok || !strings.Contains(detail, "blocked") {
		t.Fatalf("health while the read hangs: %v %q", ok, detail)
	}
	close(fsys.release)
	for f.stuck.count() > 0 {
		time.Sleep(time.Millisecond)
	}
	// The last load still could not read the file in time.
	if ok, detail := f.Health(); ok || !strings.Contains(detail, "could not be read in time") {
		t.Fatalf("health after the read ended: %v %q", ok, detail)
	}
}

func TestReadBoundedCountsBytesRead(t *testing.T) {
	// A file that claims to be small but keeps giving bytes is cut off.
	fsys := endlessFS{}
	_, err := readBounded(fsys, "endless.yaml", 1000, time.Second, nil)
	if !errors.Is(err, errTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

type endlessFS struct{}

type endlessFile struct{}

func (endlessFS) Open(string) (fs.File, error)         { return endlessFile{}, nil }
func (endlessFile) Stat() (fs.FileInfo, error)         { return fstest.MapFS{"f": {}}.Stat("f") }
func (endlessFile) Read(p []byte) (int, error)         { clear(p); return len(p), nil }
func (endlessFile) Close() error                       { return nil }
func (endlessFile) ReadDir(int) ([]fs.DirEntry, error) { return nil, nil }
