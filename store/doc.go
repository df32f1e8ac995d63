// Package store is the metadata database, the single source of truth:
// DAGs and their versions, runs, task instances and every try, variables,
// import errors, pools and the audit log. SQLite (modernc.org/sqlite, no
// cgo) is built in; the schema and queries stay within what PostgreSQL
// also accepts so a second dialect needs no change in callers. Every state
// change is a compare-and-swap on the previous state.
package store
