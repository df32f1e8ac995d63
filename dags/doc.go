// Package dags owns updraft's domain: DAG and task specifications, loading
// them from dag-factory compatible YAML files with file:line:col problems,
// Airflow 2.x timetables, and Jinja templating with Airflow's context.
//
// It imports no other updraft package; every other package depends on it.
package dags
