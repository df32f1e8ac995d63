// Package scheduler turns DAGs into runs: it creates runs from timetables,
// decides which task instances are ready (trigger rules, limits, pools),
// handles retries, timeouts and callbacks, and declares the store and
// executor interfaces it consumes. (Arrives with the scheduling engine.)
package scheduler
