// Package pgtest starts a throwaway PostgreSQL server for tests, from the
// system's PostgreSQL binaries (Debian's postgresql package), on a free
// loopback port, in a temporary folder removed afterwards. initdb refuses
// to run as root, so as root the server runs as the postgres user.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// Server is a running throwaway PostgreSQL.
type Server struct {
	Port int
	dir  string
	bin  string
	as   []string // runuser prefix when running as root
}

// DSN is a connection URL for a database of the server (user postgres,
// trust authentication on loopback).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// binDir finds the newest installed PostgreSQL's binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL found under /usr/lib/postgresql: run `make deps` (apt-get install postgresql)")
}

// Start starts a server for the test; it stops at cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binDir()
	if err != nil {
		tb.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "updraft-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{dir: dir, bin: bin}
	tb.Cleanup(func() { s.stop(); os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatal("running as root needs the postgres user to run PostgreSQL: ", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
		s.as = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = freePort(tb)
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c fsync=off -c synchronous_commit=off -c full_page_writes=off -k %s", s.Port, dir)
		out, err := s.run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "start")
		if err == nil {
			return s
		}
		if attempt == 4 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			tb.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// CreateDB creates a database.
func (s *Server) CreateDB(tb testing.TB, name string) string {
	tb.Helper()
	if out, err := s.run(filepath.Join(s.bin, "createdb"), "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", name); err != nil {
		tb.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	return s.DSN(name)
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, s.as...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

func (s *Server) stop() {
	if s.Port == 0 {
		return
	}
	_, _ = s.run(filepath.Join(s.bin, "pg_ctl"), "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
