package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"updraft/scheduler"
	"updraft/store"
)

const backfillUse = "usage: updraft backfill create DAG_ID --from DATE --to DATE [--reprocess none|failed|completed]\n" +
	"           [--max-active-runs 10] [--run-backwards] [--conf JSON] [--dry-run]\n" +
	"       updraft backfill list [DAG_ID]\n" +
	"       updraft backfill pause|unpause|cancel ID"

// backfill is `updraft backfill`: Airflow 3's backfills, made here and run
// by the server's scheduler (it notices them at once).
func (m Main) backfill(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(m.Stderr, backfillUse)
		return 2
	}
	fl, c := m.commonFlags("backfill " + args[0])
	from := fl.String("from", "", "with create: the first logical date (YYYY-MM-DD or RFC 3339)")
	to := fl.String("to", "", "with create: the last logical date, inclusive (a date alone: the whole day)")
	reprocess := fl.String("reprocess", store.ReprocessNone, "with create: run again the dates whose run failed (failed), or ended (completed)")
	maxActive := fl.Int("max-active-runs", scheduler.DefaultBackfillRuns, "with create: the backfill's runs at once")
	backwards := fl.Bool("run-backwards", false, "with create: the newest dates first")
	conf := fl.String("conf", "", "with create: every run's dag_run.conf, as JSON")
	dry := fl.Bool("dry-run", false, "with create: print the dates and what would happen to each, change nothing")
	pos, err := parseInterleaved(fl, args[1:])
	if err != nil {
		return 2
	}
	usage := func() int {
		fmt.Fprintln(m.Stderr, backfillUse)
		return 2
	}
	switch args[0] {
	case "create":
		if len(pos) != 1 || *from == "" || *to == "" {
			return usage()
		}
		o := scheduler.BackfillOptions{DagID: pos[0], Reprocess: *reprocess, MaxActiveRuns: *maxActive, RunBackwards: *backwards,
			DryRun: *dry, Actor: "cli"}
		if o.From, err = parseDate(*from); err == nil {
			o.To, err = parseDate(*to)
		}
		if len(*to) == len("2006-01-02") {
			o.To = o.To.Add(24*time.Hour - time.Second) // a date alone is the whole day
		}
		if err == nil {
			o.Conf, err = parseConf(*conf)
		}
		if err != nil {
			fmt.Fprintln(m.Stderr, "updraft:", err)
			return 2
		}
		return m.withScheduler(ctx, c, func(s *scheduler.Scheduler) error {
			b, dates, err := s.Backfill(ctx, o)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "LOGICAL DATE\tRUN\tWHAT")
			for _, d := range dates {
				fmt.Fprintf(w, "%s\t%s\t%s\n", d.LogicalDate.Format(time.RFC3339), d.RunID, d.What())
			}
			w.Flush()
			if *dry {
				fmt.Fprintf(m.Stdout, "dry run: %d dates, nothing created\n", len(dates))
			} else {
				fmt.Fprintf(m.Stdout, "created backfill %d of %s: %d dates, %d runs at once\n", b.ID, b.DagID, len(dates), b.MaxActiveRuns)
			}
			return nil
		})
	case "list":
		if len(pos) > 1 {
			return usage()
		}
		f := store.BackfillFilter{}
		if len(pos) == 1 {
			f.DagID = pos[0]
		}
		st, err := openStore(ctx, c.db)
		if err != nil {
			return m.fail(err)
		}
		defer st.Close()
		list, _, err := st.Backfills(ctx, f)
		if err != nil {
			return m.fail(err)
		}
		w := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tDAG\tFROM\tTO\tREPROCESS\tMAX ACTIVE\tSTATE")
		for _, b := range list {
			state := "running"
			switch {
			case b.CompletedAt != nil:
				state = "completed " + b.CompletedAt.Format(time.RFC3339)
			case b.Paused:
				state = "paused"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", b.ID, b.DagID, b.From.Format(time.RFC3339), b.To.Format(time.RFC3339),
				b.Reprocess, b.MaxActiveRuns, state)
		}
		w.Flush()
		return 0
	case scheduler.BackfillPause, scheduler.BackfillUnpause, scheduler.BackfillCancel:
		if len(pos) != 1 {
			return usage()
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil {
			fmt.Fprintf(m.Stderr, "updraft: backfill id %q: a number, as `updraft backfill list` shows\n", pos[0])
			return 2
		}
		return m.withScheduler(ctx, c, func(s *scheduler.Scheduler) error {
			b, err := s.ChangeBackfill(ctx, id, args[0], "cli")
			if err == nil {
				fmt.Fprintf(m.Stdout, "backfill %d of %s: %s\n", b.ID, b.DagID, scheduler.BackfillDone[args[0]])
			}
			return err
		})
	}
	return usage()
}
