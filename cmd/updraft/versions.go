package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"updraft/web/ops"
)

// dagsVersions is `updraft dags versions DAG_ID`: the DAG's stored
// versions; `updraft dags diff DAG_ID [FROM TO]` prints what changed
// between two of them (the last two by default) as a unified diff.
func (m Main) dagsVersions(ctx context.Context, args []string, diff bool) int {
	name, use := "dags versions", "usage: updraft dags versions DAG_ID"
	if diff {
		name, use = "dags diff", "usage: updraft dags diff DAG_ID [FROM TO]"
	}
	fl, c := m.commonFlags(name)
	pos, err := parseInterleaved(fl, args)
	if err != nil || len(pos) < 1 || !diff && len(pos) != 1 || diff && len(pos) != 1 && len(pos) != 3 {
		fmt.Fprintln(m.Stderr, use)
		return 2
	}
	st, err := openStore(ctx, c.db)
	if err != nil {
		return m.fail(err)
	}
	defer st.Close()
	vs, err := st.DAGVersions(ctx, pos[0])
	if err != nil {
		return m.fail(err)
	}
	if len(vs) == 0 {
		return m.fail(fmt.Errorf("dag %q has no stored version: has a server loaded it with this database?", pos[0]))
	}
	if !diff {
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tFIRST SEEN\tGIT REVISION\tFILE")
		for _, v := range vs {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", v.Number, v.CreatedAt.UTC().Format(time.RFC3339), v.GitRevision, v.File)
		}
		w.Flush()
		return 0
	}
	from, to := len(vs)-1, len(vs)
	if len(pos) == 3 {
		if from, err = strconv.Atoi(pos[1]); err == nil {
			to, err = strconv.Atoi(pos[2])
		}
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft: versions are numbers, as `updraft dags versions` lists them")
			return 2
		}
	}
	if from < 1 {
		fmt.Fprintf(m.Stdout, "%s has one version so far\n", pos[0])
		return 0
	}
	d, err := (&ops.Service{Store: st}).DiffVersions(ctx, pos[0], from, to)
	if err != nil {
		return m.fail(err)
	}
	if d.Unified == "" {
		fmt.Fprintf(m.Stdout, "versions %d and %d of %s define the same DAG\n", from, to, pos[0])
		return 0
	}
	fmt.Fprint(m.Stdout, d.Unified)
	return 0
}
