package store

import (
	"context"
)

// StateCounts returns how many runs and task instances are in each state
// (a task instance without a state counts as "none").
func (s *Store) StateCounts(ctx context.Context) (runs, tis map[string]int, err error) {
	if runs, err = s.countBy(ctx, `SELECT state, COUNT(*) FROM dag_runs GROUP BY state`); err != nil {
		return nil, nil, err
	}
	if tis, err = s.countBy(ctx, `SELECT state, COUNT(*) FROM task_instances GROUP BY state`); err != nil {
		return nil, nil, err
	}
	if n, ok := tis[""]; ok {
		tis["none"] += n
		delete(tis, "")
	}
	return runs, tis, nil
}

// RunStateCounts returns how many runs each DAG has in each state.
func (s *Store) RunStateCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.query(ctx, `SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var dag, state string
		var n int
		if err := rows.Scan(&dag, &state, &n); err != nil {
			return nil, err
		}
		if out[dag] == nil {
			out[dag] = map[string]int{}
		}
		out[dag][state] = n
	}
	return out, rows.Err()
}
