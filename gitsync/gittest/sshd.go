package gittest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// SSHD is a throwaway OpenSSH server on loopback that serves the
// repositories under a folder to one key.
type SSHD struct {
	tb      testing.TB
	dir     string
	port    int
	base    string
	proc    *server
	KeyFile string // the client's private key, authorised by the server
	// KnownHosts holds the server's host key, for strict checking.
	KnownHosts string
}

// NewKey writes a fresh ed25519 key pair at path and path.pub.
func NewKey(tb testing.TB, path string) {
	tb.Helper()
	os.Remove(path)
	os.Remove(path + ".pub")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "updraft-test", "-f", path).CombinedOutput(); err != nil {
		tb.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

// StartSSHD serves base over SSH until the test ends.
func StartSSHD(tb testing.TB, base string) *SSHD {
	tb.Helper()
	dir := tb.TempDir()
	s := &SSHD{tb: tb, dir: dir, port: freePort(tb), base: base, KeyFile: filepath.Join(dir, "client_key"),
		KnownHosts: filepath.Join(dir, "known_hosts")}
	NewKey(tb, filepath.Join(dir, "host_key"))
	NewKey(tb, s.KeyFile)
	s.Authorize(s.KeyFile)
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(hostPub))
	if err := os.WriteFile(s.KnownHosts, fmt.Appendf(nil, "[127.0.0.1]:%d %s %s\n", s.port, f[0], f[1]), 0o644); err != nil {
		tb.Fatal(err)
	}
	config := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
`, s.port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), filepath.Join(dir, "sshd.pid"))
	if err := os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	// sshd wants its privilege separation folder.
	_ = os.MkdirAll("/run/sshd", 0o755)
	s.Start()
	tb.Cleanup(func() {
		if tb.Failed() && s.proc != nil {
			tb.Logf("sshd log:\n%s", s.proc.log.String())
		}
		s.Stop()
	})
	return s
}

// Authorize makes the key at keyFile (its .pub beside it) the only one
// the server accepts.
func (s *SSHD) Authorize(keyFile string) {
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		s.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), pub, 0o600); err != nil {
		s.tb.Fatal(err)
	}
}

// Start starts sshd.
func (s *SSHD) Start() {
	s.proc = startServer(s.tb, exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(s.dir, "sshd_config")),
		"Server listening on")
}

// Stop kills sshd.
func (s *SSHD) Stop() {
	s.proc.stop()
}

// URL is the ssh:// address of base/repo.git for the current user.
func (s *SSHD) URL() string {
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d%s/repo.git", name, s.port, s.base)
}
