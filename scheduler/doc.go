// Package scheduler turns DAGs into runs with Airflow 2.x semantics: it
// creates runs from timetables (catchup, max_active_runs), moves task
// instances through the transition table by trigger rules, dispatches them
// to an executor within parallelism, max_active_tasks and pool limits,
// retries failures with Airflow's delays, enforces timeouts, and carries
// out the manual commands (trigger, clear, mark, pause), each audited.
//
// Everything it needs to continue is in the store: after a crash, Run
// adopts the tries that are still running and fails, with a reason, the
// ones that are gone.
package scheduler
