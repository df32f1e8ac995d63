// Command updraft is the updraft scheduler: one binary for the server and
// the command-line tools.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // DAG time zones must resolve even on minimal images
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Getenv, Environ: os.Environ}.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Main runs one updraft command. Its fields are the process's outside
// world, so tests can run commands in-process.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Env            func(string) string
	Environ        func() []string // every variable (for listing connections); nil: none
}

const usage = `updraft: the YAML-DAG scheduler with Airflow's semantics

Usage:
  updraft server [--dags DIR] [--db sqlite:PATH] [--addr ADDR] [--logs DIR]
                                     run the scheduler, the local executor and the web server
  updraft dags validate PATH...      check DAG files or folders; exit 1 on any error
  updraft dags list [--json] PATH    list the DAGs found under PATH
  updraft dags next [-n N] PATH DAG  print the next scheduled runs of a DAG
  updraft dags test DAG_ID [DATE]    run a DAG once, in-process, on a throwaway database
  updraft dags trigger DAG_ID [--conf JSON] [--logical-date DATE] [--run-id ID]
  updraft dags pause|unpause DAG_ID
  updraft dags versions DAG_ID        the DAG's stored versions
  updraft dags diff DAG_ID [FROM TO]  what changed between two versions (default: the last two)
  updraft tasks test DAG_ID TASK_ID [DATE]   render and run one task, recording nothing
  updraft tasks render PATH DAG TASK DATE [--conf JSON] [--var K=V]...
                                     print a task's fields rendered for a run
  updraft variables list | get KEY | set KEY VALUE [--secret] | delete KEY
  updraft users create USER --role ROLE (--password-file F | --password-stdin)
  updraft users set-password USER (--password-file F | --password-stdin)
  updraft users delete USER | list
                                     people and scripts allowed in; roles Viewer, User, Op, Admin
  updraft pools list | set NAME SLOTS [--description D] | delete NAME
                                     limits on task instances running at once across DAGs
  updraft connections list | test CONN_ID
                                     Airflow connections from UPDRAFT_CONN_<ID> and UPDRAFT_CONNECTIONS_DIR
  updraft db migrate                 create or upgrade the database
  updraft db check                   is the database reachable and up to date?
  updraft db clean (--before DATE | --older-than DURATION) [--dry-run] [--keep-logs]
                                     remove old runs, tries, logs, audit entries, alerts
  updraft backfill create DAG_ID --from DATE --to DATE [--reprocess none|failed|completed]
                 [--max-active-runs N] [--run-backwards] [--conf JSON] [--dry-run]
                                     runs for the past logical dates of DAG_ID
  updraft backfill list [DAG_ID] | pause|unpause|cancel ID
  updraft api token USER [--expires DURATION]
                                     print a bearer token for /api/v2 (default: 24h)
  updraft api rotate-key             sign new tokens with a new key; old tokens stay valid
  updraft version                    print the version

Commands that read DAGs or the database take --dags DIR (env UPDRAFT_DAGS,
default "dags") and --db sqlite:PATH or postgres://... (env UPDRAFT_DB, default
sqlite:updraft.db).
On first start, the server creates an Admin from UPDRAFT_ADMIN_USER and
UPDRAFT_ADMIN_PASSWORD when that user does not exist yet.
`

// Run executes args and returns the process exit code.
func (m Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(m.Stderr, nil))
	switch args[0] {
	case "server":
		return m.server(ctx, logger, args[1:])
	case "dags":
		if len(args) < 2 {
			fmt.Fprint(m.Stderr, usage)
			return 2
		}
		switch args[1] {
		case "validate":
			return m.dagsValidate(args[2:])
		case "list":
			return m.dagsList(args[2:])
		case "next":
			return m.dagsNext(args[2:])
		case "test":
			return m.dagsTest(ctx, args[2:])
		case "trigger":
			return m.dagsTrigger(ctx, args[2:])
		case "pause", "unpause":
			return m.dagsPause(ctx, args[2:], args[1] == "pause")
		case "versions", "diff":
			return m.dagsVersions(ctx, args[2:], args[1] == "diff")
		}
	case "tasks":
		if len(args) >= 2 && args[1] == "render" {
			return m.tasksRender(args[2:])
		}
		if len(args) >= 2 && args[1] == "test" {
			return m.tasksTest(ctx, args[2:])
		}
	case "variables":
		return m.variables(ctx, args[1:])
	case "users":
		return m.users(ctx, args[1:])
	case "pools":
		return m.pools(ctx, args[1:])
	case "connections":
		return m.connectionsCmd(ctx, args[1:])
	case "api":
		return m.apiCmd(ctx, args[1:])
	case "backfill":
		return m.backfill(ctx, args[1:])
	case "db":
		if len(args) >= 2 && args[1] == "migrate" {
			return m.dbMigrate(ctx, args[2:])
		}
		if len(args) >= 2 && args[1] == "check" {
			return m.dbCheck(ctx, args[2:])
		}
		if len(args) >= 2 && args[1] == "clean" {
			return m.dbClean(ctx, args[2:])
		}
	case "version", "--version":
		fmt.Fprintln(m.Stdout, "updraft", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return 0
	}
	fmt.Fprintf(m.Stderr, "updraft: unknown command %q\n\n%s", args[0], usage)
	return 2
}
