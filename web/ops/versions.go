package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/aymanbagabas/go-udiff"

	"updraft/store"
)

// volatile are the keys of a stored DAG version that change with edits
// that change nothing (where in the file, its hash, the commit).
var volatile = map[string]bool{"line": true, "hash": true, "git_revision": true}

// VersionText is a stored DAG version as a diff shows it: the definition
// updraft keeps (every default applied), one field per line, without what
// changes with edits that change nothing.
func VersionText(src string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(src), &v); err != nil {
		return "", fmt.Errorf("a stored DAG version: %w", err)
	}
	var drop func(any) any
	drop = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if volatile[k] {
					delete(x, k)
				} else {
					x[k] = drop(e)
				}
			}
		case []any:
			for i, e := range x {
				x[i] = drop(e)
			}
		}
		return v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(drop(v)); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// VersionDiff is what changed in a DAG between two of its versions.
type VersionDiff struct {
	From, To store.DAGVersion
	Unified  string // "" when they define the same DAG
}

// DiffVersions compares two versions of a DAG by number (1 is the first);
// an unknown DAG or number is store.ErrNotFound.
func (s *Service) DiffVersions(ctx context.Context, dagID string, from, to int) (VersionDiff, error) {
	vs, err := s.Store.DAGVersions(ctx, dagID)
	if err != nil {
		return VersionDiff{}, err
	}
	pick := func(n int) (store.DAGVersion, string, error) {
		if n < 1 || n > len(vs) {
			return store.DAGVersion{}, "", fmt.Errorf("dag %q has no version %d (it has %d): %w", dagID, n, len(vs), store.ErrNotFound)
		}
		v := vs[n-1]
		src, err := s.Store.DAGVersionSource(ctx, dagID, v.Version)
		if err != nil {
			return v, "", err
		}
		text, err := VersionText(src)
		return v, text, err
	}
	a, at, err := pick(from)
	if err != nil {
		return VersionDiff{}, err
	}
	b, bt, err := pick(to)
	if err != nil {
		return VersionDiff{}, err
	}
	label := func(v store.DAGVersion) string {
		l := fmt.Sprintf("%s version %d (%s)", dagID, v.Number, v.CreatedAt.UTC().Format("2006-01-02 15:04 MST"))
		if v.GitRevision != "" {
			l += " at " + short(v.GitRevision)
		}
		return l
	}
	return VersionDiff{From: a, To: b, Unified: udiff.Unified(label(a), label(b), at, bt)}, nil
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
