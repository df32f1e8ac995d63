package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sampleModule stands in for dag-factory's dev/dags/sample.py, which the
// corpus does not carry: the functions its TaskFlow examples name, with
// the signatures those files call them with.
const sampleModule = `
def some_number():
    return 1

def build_numbers_list():
    return [2, 4, 6]

def double(number: int):
    return 2 * number

def multiply(a: int, b: int) -> int:
    return a * b

def double_with_label(number: int, label: bool = False):
    return f"{number} x 2 = {2 * number}" if label else 2 * number

def collect():
    return {"key1": "a", "key2": "b"}

def echo(value):
    print("echo", value)
    return value
`

// dag-factory's own TaskFlow examples load unchanged and run with dags
// test once the module they name is beside them: "+task" references,
// mapping over a task's output, partial, multiple_outputs.
func TestCorpusTaskFlowExamplesRun(t *testing.T) {
	corpus := os.Getenv("UPDRAFT_DAG_FACTORY_CORPUS")
	if corpus == "" {
		corpus = "../../../shared/corpus/dag-factory"
	}
	dir := t.TempDir()
	for _, name := range []string{"dev/dags/airflow2/example_taskflow.yml", "dev/dags/example_multiple_outputs_taskflow.yml"} {
		b, err := os.ReadFile(filepath.Join(corpus, name))
		if err != nil {
			t.Fatalf("corpus (set UPDRAFT_DAG_FACTORY_CORPUS): %v", err)
		}
		writeFile(t, filepath.Join(dir, filepath.Base(name)), string(b))
	}
	writeFile(t, filepath.Join(dir, "sample.py"), sampleModule)
	if code, out, errOut := run(t, nil, "dags", "validate", dir); code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run(t, nil, "dags", "test", "--dags", dir, "example_taskflow", "2024-03-01")
	if code != 0 || len(regexp.MustCompile(`(?m)\ssuccess\s+1$`).FindAllString(out, -1)) != 23 {
		t.Fatalf("example_taskflow: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "dags", "test", "--dags", dir, "example_multiple_outputs_taskflow", "2024-03-01")
	if code != 0 || !regexp.MustCompile(`echo2\s+success`).MatchString(out) {
		t.Fatalf("example_multiple_outputs_taskflow: exit %d\n%s%s", code, out, errOut)
	}
}
