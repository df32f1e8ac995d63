package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No Docker engine runs here, so the image cannot be built; what it
// promises can be checked: the Dockerfile is multi-stage, builds with cgo
// off and runs as a non-root user on a static base, and the binary built
// that way is static and runs as an unprivileged user.
func TestContainerImage(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	froms := regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*)$`).FindStringSubmatch(df)
	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(df)
	if len(froms) != 2 || build == nil || user == nil || user[1] == "0" || !strings.Contains(df, "distroless/static") {
		t.Fatalf("Dockerfile: %d stages, build %v, user %v", len(froms), build, user)
	}
	built := buildBinary(t) // CGO_ENABLED=0, as in the Dockerfile
	// A folder every user can enter, for the unprivileged run.
	dir, err := os.MkdirTemp("", "updraft-image-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "updraft")
	data, err := os.ReadFile(built)
	if err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatal("copy the binary")
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary is dynamically linked (%v)", p.Type)
		}
	}
	run := exec.Command(bin, "version")
	if os.Geteuid() == 0 {
		run = exec.Command("runuser", "-u", "nobody", "--", bin, "version")
	}
	out, err := run.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "updraft ") {
		t.Fatalf("as an unprivileged user: %v %s", err, out)
	}
}
