package python

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"updraft/dags"
	"updraft/executor"
)

// A credential names its try, and nothing but this server's key makes
// one: a changed claim, another key or junk are refused.
func TestCredentials(t *testing.T) {
	c, err := NewCredentials([]byte(strings.Repeat("a", 32)))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewCredentials([]byte(strings.Repeat("b", 32)))
	k := executor.TryKey{DagID: "d", RunID: "manual__2024-01-01T00:00:00+00:00", TaskID: "t", TryNumber: 2, MapIndex: 3}
	tok := c.Mint(k)
	if got, err := c.Verify(tok); err != nil || got != k {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	body, sig, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	raw, _ := json.Marshal(claims{D: "d", R: k.RunID, T: "other_task", M: 3, N: 2})
	forged := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw) + "." + sig // another task's claims, this try's signature
	for _, bad := range []string{"", "junk", tokenPrefix + body, forged, tokenPrefix + body + "." + sig + "x", other.Mint(k)} {
		if _, err := c.Verify(bad); err == nil {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	if _, err := NewCredentials([]byte("short")); err == nil {
		t.Error("a short key was accepted")
	}
}

// The bundle a pod fetches holds the runner and the DAG folder's regular
// files; a symbolic link (to anything outside) and .git stay behind.
func TestWriteBundle(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, "a.py"), []byte("def a(): pass\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.py"), []byte("B = 1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".git", "config"), []byte("[core]\n"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd.py")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteBundle(&buf, dir); err != nil {
		t.Fatal(err)
	}
	gz, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if files["dags/a.py"] != "def a(): pass\n" || files["dags/sub/b.py"] != "B = 1\n" || !strings.Contains(files["runtime/"+RunnerFile], "def ") {
		t.Fatalf("bundle: %v", slices.Sorted(maps.Keys(files)))
	}
	for name := range files {
		if strings.Contains(name, "passwd") || strings.Contains(name, ".git") || strings.HasPrefix(name, "dags/etc") {
			t.Errorf("bundle has %s", name)
		}
	}
}

// What the runner reports becomes the try's outcome; a try killed or
// timed out keeps the executor's reason.
func TestFinish(t *testing.T) {
	no := false
	branch := dags.PythonSpec{Mode: dags.PythonBranch}
	short := dags.PythonSpec{Mode: dags.PythonShortCircuit, IgnoreDownstreamTriggerRules: true}
	cases := []struct {
		name string
		ev   executor.Event
		spec dags.PythonSpec
		res  *Result
		want func(executor.Event) bool
	}{
		{"no result", executor.Event{State: executor.Succeeded}, branch, nil,
			func(e executor.Event) bool {
				return e.State == executor.Failed && strings.Contains(e.Reason, "without reporting")
			}},
		{"branch", executor.Event{State: executor.Succeeded}, branch, &Result{State: "success", Branch: []string{"a"}, XCom: map[string]json.RawMessage{"return_value": json.RawMessage(`["a"]`)}},
			func(e executor.Event) bool {
				return e.Branch != nil && e.Branch.Follow[0] == "a" && string(e.XCom["return_value"]) == `["a"]`
			}},
		{"branch to none", executor.Event{State: executor.Succeeded}, branch, &Result{State: "success"},
			func(e executor.Event) bool { return e.Branch != nil && len(e.Branch.Follow) == 0 }},
		{"short circuit", executor.Event{State: executor.Succeeded}, short, &Result{State: "success", Condition: &no},
			func(e executor.Event) bool { return e.Branch != nil && e.Branch.All && len(e.Branch.Follow) == 0 }},
		{"skip", executor.Event{State: executor.Succeeded}, branch, &Result{State: "skipped", Reason: "skipped: no"},
			func(e executor.Event) bool { return e.State == executor.Skipped && e.Branch == nil }},
		{"fail for good", executor.Event{State: executor.Failed, Reason: "exit code 1"}, branch, &Result{State: "failed", Final: true, Reason: "bad input"},
			func(e executor.Event) bool { return e.State == executor.Failed && e.Final && e.Reason == "bad input" }},
		{"reported then crashed", executor.Event{State: executor.Failed, Reason: "exit code 137"}, branch, &Result{State: "success"},
			func(e executor.Event) bool { return e.State == executor.Failed && e.Reason == "exit code 137" }},
	}
	for _, c := range cases {
		ev := c.ev
		Finish(&ev, c.spec, c.res, true)
		if !c.want(ev) {
			t.Errorf("%s: %+v", c.name, ev)
		}
	}
	if _, err := ParseResult([]byte(`{"state": "weird"}`)); err == nil {
		t.Error("a result with an unknown state was accepted")
	}
}
