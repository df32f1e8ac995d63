// Package store is the metadata database, the single source of truth:
// migrations and queries for DAG versions, runs, task instances and their
// tries, with SQLite and PostgreSQL dialects behind one conformance suite.
// (Arrives with the scheduling engine.)
package store
