// Package python runs Python callables (PythonOperator, @task, branches,
// short circuits, sensors) outside the server: it ships updraft's runner
// and its stand-in for Airflow's Python API (runtime/), builds what the
// runner is given, turns what it reports into a try's outcome, and signs
// the per-try credential the runner reaches the server's Execution API
// with. The executors start the runner like any command: a child process
// (local) or a pod (Kubernetes).
package python

import (
	"archive/tar"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"updraft/dags"
	"updraft/executor"
)

//go:embed all:runtime
var runtimeFS embed.FS

// RunnerFile is the runner's path inside the runtime folder.
const RunnerFile = "updraft_runner.py"

// Install writes the runtime into a folder below parent named by its
// content hash (reused when it is already there) and returns that folder.
// Safe for concurrent use by several processes: the folder appears
// complete or not at all. Only the server's user reads it (the tries
// run as that user).
func Install(parent string) (string, error) {
	sum, err := runtimeHash()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(parent, "python-runtime-"+sum[:16])
	if _, err := os.Stat(filepath.Join(dir, RunnerFile)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, ".python-runtime-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = walkRuntime(func(name string, b []byte) error {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o600)
	})
	if err != nil {
		return "", fmt.Errorf("python runtime: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, RunnerFile)); statErr == nil {
			return dir, nil // another process won
		}
		return "", err
	}
	return dir, nil
}

// walkRuntime calls fn with each file of the runtime: its path below
// runtime/ and its content.
func walkRuntime(fn func(name string, b []byte) error) error {
	return fs.WalkDir(runtimeFS, "runtime", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := runtimeFS.ReadFile(p)
		if err != nil {
			return err
		}
		return fn(strings.TrimPrefix(p, "runtime/"), b)
	})
}

func runtimeHash() (string, error) {
	h := sha256.New()
	err := walkRuntime(func(name string, b []byte) error {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// Input is what the runner reads: the callable, its arguments and the
// try's Airflow context.
type Input struct {
	Mode            string         `json:"mode"`
	Callable        Callable       `json:"callable"`
	SysPath         []string       `json:"sys_path"`
	OpArgs          []any          `json:"op_args"`
	OpKwargs        map[string]any `json:"op_kwargs"`
	TemplatesDict   map[string]any `json:"templates_dict"`
	MultipleOutputs bool           `json:"multiple_outputs"`
	ShowReturnValue bool           `json:"show_return_value_in_logs"`
	Sensor          *Sensor        `json:"sensor,omitempty"`
	Context         map[string]any `json:"context"`
}

// Callable is a module (dotted) or a file from the DAG folder's root,
// and the function's name in it.
type Callable struct {
	Module string `json:"module,omitempty"`
	File   string `json:"file,omitempty"`
	Name   string `json:"name"`
}

// Sensor is a PythonSensor's settings, in seconds.
type Sensor struct {
	PokeInterval       float64 `json:"poke_interval"`
	Timeout            float64 `json:"timeout"`
	Mode               string  `json:"mode"`
	SoftFail           bool    `json:"soft_fail"`
	ExponentialBackoff bool    `json:"exponential_backoff"`
	MaxWait            float64 `json:"max_wait"`
}

// NewInput builds the runner's input from a rendered spec.
func NewInput(s dags.PythonSpec) Input {
	in := Input{Mode: s.Mode, SysPath: s.SysPath, OpArgs: s.OpArgs, OpKwargs: s.OpKwargs, TemplatesDict: s.TemplatesDict,
		MultipleOutputs: s.MultipleOutputs, ShowReturnValue: s.ShowReturnValue, Context: s.Context,
		Callable: Callable{Name: s.Name}}
	if s.Module != "" {
		in.Callable.Module = s.Module
	} else {
		in.Callable.File = s.File
	}
	if in.SysPath == nil {
		in.SysPath = []string{""}
	}
	if ss := s.Sensor; ss != nil {
		in.Sensor = &Sensor{PokeInterval: ss.PokeInterval.Seconds(), Timeout: ss.Timeout.Seconds(), Mode: ss.Mode,
			SoftFail: ss.SoftFail, ExponentialBackoff: ss.ExponentialBackoff, MaxWait: ss.MaxWait.Seconds()}
	}
	return in
}

// Result is what the runner reports at the end of a try.
type Result struct {
	State     string                     `json:"state"` // success, skipped or failed
	Final     bool                       `json:"final,omitempty"`
	Reason    string                     `json:"reason,omitempty"`
	XCom      map[string]json.RawMessage `json:"xcom,omitempty"`
	Branch    []string                   `json:"branch,omitempty"`
	Condition *bool                      `json:"condition,omitempty"`
}

// ParseResult reads a runner's result.
func ParseResult(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("the Python runner's result is not JSON: %w", err)
	}
	switch r.State {
	case "success", "skipped", "failed":
	default:
		return nil, fmt.Errorf("the Python runner reported state %q", r.State)
	}
	return &r, nil
}

// Finish completes a Python try's final event from what the runner
// reported (res; nil when it reported nothing). ev comes with the state
// the process or pod ended in: a try killed or timed out keeps that.
func Finish(ev *executor.Event, s dags.PythonSpec, res *Result, pushXCom bool) {
	if res == nil {
		if ev.State == executor.Succeeded {
			ev.State, ev.Reason = executor.Failed, "the Python runner ended without reporting a result"
		}
		return
	}
	if ev.State == executor.Failed && res.State != "failed" {
		return // it reported, then something went wrong (its exit code says what)
	}
	switch res.State {
	case "failed":
		ev.State, ev.Reason, ev.Final = executor.Failed, res.Reason, res.Final
		if ev.Reason == "" {
			ev.Reason = "the callable failed"
		}
		return
	case "skipped":
		ev.State, ev.Reason = executor.Skipped, res.Reason
		return
	}
	ev.State = executor.Succeeded
	if pushXCom && len(res.XCom) > 0 {
		ev.XCom = res.XCom
	}
	switch s.Mode {
	case dags.PythonBranch:
		follow := res.Branch
		if follow == nil {
			follow = []string{}
		}
		ev.Branch = &dags.Branch{Follow: follow}
	case dags.PythonShortCircuit:
		if res.Condition != nil && !*res.Condition {
			ev.Branch = &dags.Branch{Follow: []string{}, All: s.IgnoreDownstreamTriggerRules}
		}
	}
}

// Environment variables the runner reads.
const (
	EnvInput      = "UPDRAFT_TRY_INPUT"
	EnvInputFile  = "UPDRAFT_TRY_INPUT_FILE"
	EnvResultFile = "UPDRAFT_RESULT_FILE"
	EnvDagsDir    = "UPDRAFT_DAGS_DIR"
	EnvAPIURL     = "UPDRAFT_API_URL"
	EnvToken      = "UPDRAFT_TRY_TOKEN"
)

// Credentials signs and checks per-try credentials: a token names one try
// and carries an HMAC of it under the server's key. It says nothing about
// whether the try still runs; the Execution API checks that.
type Credentials struct{ key []byte }

// NewCredentials uses key (at least 32 bytes) to sign.
func NewCredentials(key []byte) (*Credentials, error) {
	if len(key) < 32 {
		return nil, errors.New("python credentials: the key is shorter than 32 bytes")
	}
	return &Credentials{key: append([]byte{}, key...)}, nil
}

type claims struct {
	D string `json:"d"`
	R string `json:"r"`
	T string `json:"t"`
	M int    `json:"m"`
	N int    `json:"n"`
}

const tokenPrefix = "updraft-try."

// Mint returns the credential of one try.
func (c *Credentials) Mint(k executor.TryKey) string {
	body, _ := json.Marshal(claims{k.DagID, k.RunID, k.TaskID, k.MapIndex, k.TryNumber})
	enc := base64.RawURLEncoding.EncodeToString(body)
	return tokenPrefix + enc + "." + base64.RawURLEncoding.EncodeToString(c.sign(enc))
}

func (c *Credentials) sign(s string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(tokenPrefix + s))
	return m.Sum(nil)
}

// ErrBadToken means a credential is malformed or not signed by this
// server's key.
var ErrBadToken = errors.New("not a valid try credential")

// Verify returns the try a credential names.
func (c *Credentials) Verify(token string) (executor.TryKey, error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	body, sig, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return executor.TryKey{}, ErrBadToken
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.sign(body)) {
		return executor.TryKey{}, ErrBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	var cl claims
	if err != nil || json.Unmarshal(raw, &cl) != nil {
		return executor.TryKey{}, ErrBadToken
	}
	return executor.TryKey{DagID: cl.D, RunID: cl.R, TaskID: cl.T, MapIndex: cl.M, TryNumber: cl.N}, nil
}

// WriteBundle writes what a pod needs to run a callable as a gzipped tar:
// the runtime under runtime/ and the DAG folder dagsDir under dags/. Only
// regular files and folders are taken: a symbolic link in the DAG folder
// is left out, so a repository cannot make the server read outside it;
// .git is left out too.
func WriteBundle(w io.Writer, dagsDir string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	add := func(name string, mode int64, r io.Reader, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	err := walkRuntime(func(name string, b []byte) error {
		return add("runtime/"+name, 0o644, strings.NewReader(string(b)), int64(len(b)))
	})
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dagsDir)
	if err != nil {
		return fmt.Errorf("DAG folder: %w", err)
	}
	defer root.Close()
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symbolic links and devices stay behind
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return err
		}
		return add("dags/"+filepath.ToSlash(p), 0o644, io.LimitReader(f, st.Size()), st.Size())
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Bootstrap is the program a pod's python runs (python3 -c Bootstrap): it
// fetches the bundle of its try's DAG revision from the server with the
// try's credential, unpacks it into a temporary folder (refusing any path
// that would land outside it) and runs the runner on it.
const Bootstrap = `import io, os, sys, tarfile, tempfile, urllib.request
api, tok = os.environ["UPDRAFT_API_URL"], os.environ["UPDRAFT_TRY_TOKEN"]
req = urllib.request.Request(api + "/execution/bundle", headers={"Authorization": "Bearer " + tok})
data = urllib.request.urlopen(req, timeout=120).read()
top = tempfile.mkdtemp(prefix="updraft-")
with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
    for m in tf.getmembers():
        dest = os.path.realpath(os.path.join(top, m.name))
        if not m.isfile() or not dest.startswith(os.path.realpath(top) + os.sep):
            sys.exit("updraft: refusing bundle entry " + m.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as out:
            out.write(tf.extractfile(m).read())
os.environ["UPDRAFT_DAGS_DIR"] = os.path.join(top, "dags")
os.makedirs(os.environ["UPDRAFT_DAGS_DIR"], exist_ok=True)
runner = os.path.join(top, "runtime", "updraft_runner.py")
os.execv(sys.executable, [sys.executable, "-u", runner])
`
