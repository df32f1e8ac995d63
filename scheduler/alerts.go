package scheduler

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// Alert keys join their parts with the unit separator (PostgreSQL text
// cannot hold NUL).
//
// The scheduler records alerts (store.Alert*) in the store's outbox, in
// the same transaction as the change they are about. What is then sent,
// and where, is the notifier's business.
const (
	AlertTaskFailed       = store.AlertTaskFailed
	AlertTaskRetry        = store.AlertTaskRetry
	AlertTaskMarkedFailed = store.AlertTaskMarkedFailed
	AlertRunFailed        = store.AlertRunFailed
	AlertRunSuccess       = store.AlertRunSuccess
	AlertRunMarkedFailed  = store.AlertRunMarkedFailed
	AlertImportError      = store.AlertImportError
	AlertImportFixed      = store.AlertImportFixed
)

func taskAlert(kind string, k store.TIKey, try int, detail string, at time.Time) store.Alert {
	return store.Alert{Key: strings.Join([]string{kind, k.DagID, k.RunID, k.TaskID, strconv.Itoa(try)}, "\x1f"), Kind: kind,
		DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, Try: try, Detail: detail, CreatedAt: at}
}

// runAlert is keyed by the time too: a run cleared and failing again is a
// new event.
func runAlert(kind, dagID, runID, detail string, at time.Time) store.Alert {
	return store.Alert{Key: strings.Join([]string{kind, dagID, runID, at.UTC().Format(time.RFC3339Nano)}, "\x1f"), Kind: kind,
		DagID: dagID, RunID: runID, Detail: detail, CreatedAt: at}
}

// importAlerts compares a file's import errors before and after a load.
func importAlerts(before map[string]string, files map[string]dags.Problems, revision string, at time.Time) []store.Alert {
	var out []store.Alert
	for file, probs := range files {
		var lines []string
		for _, p := range probs.Errors() {
			lines = append(lines, p.String())
		}
		trace := strings.Join(lines, "\n")
		old, had := before[file]
		switch {
		case trace != "" && trace != old:
			sum := sha256.Sum256([]byte(trace))
			detail := trace
			if revision != "" {
				detail += "\n(git revision " + revision + ")"
			}
			out = append(out, store.Alert{Key: strings.Join([]string{AlertImportError, file, hex.EncodeToString(sum[:8]), at.UTC().Format(time.RFC3339Nano)}, "\x1f"),
				Kind: AlertImportError, File: file, Detail: detail, CreatedAt: at})
		case trace == "" && had:
			out = append(out, store.Alert{Key: strings.Join([]string{AlertImportFixed, file, at.UTC().Format(time.RFC3339Nano)}, "\x1f"),
				Kind: AlertImportFixed, File: file, CreatedAt: at})
		}
	}
	return out
}
