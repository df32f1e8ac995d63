package store

import (
	"context"
	"time"
)

// DAGVersion is one stored version of a DAG: the content hash its file
// had, numbered from 1 in the order they appeared.
type DAGVersion struct {
	DagID, Version, File, GitRevision string
	Number                            int
	CreatedAt                         time.Time
}

// DAGVersions returns a DAG's versions, oldest (number 1) first.
func (s *Store) DAGVersions(ctx context.Context, dagID string) ([]DAGVersion, error) {
	rows, err := s.query(ctx, `SELECT dag_id, version, fileloc, git_revision, created_at FROM dag_versions WHERE dag_id = ? ORDER BY created_at, version`, dagID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DAGVersion
	for rows.Next() {
		var v DAGVersion
		var at string
		if err := rows.Scan(&v.DagID, &v.Version, &v.File, &v.GitRevision, &at); err != nil {
			return nil, err
		}
		v.CreatedAt, v.Number = parseTS(at), len(out)+1
		out = append(out, v)
	}
	return out, rows.Err()
}
