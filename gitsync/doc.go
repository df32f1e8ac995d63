// Package gitsync follows a git branch: it fetches on an interval, publishes
// each revision as a complete tree swapped in atomically, and reports errors
// while the last good revision keeps serving. It knows nothing about DAGs.
// (Arrives with the git sync issue.)
package gitsync
