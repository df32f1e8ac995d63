// Package executor defines the contract between the scheduler and what runs
// task tries: executor/local (child processes) and, later,
// executor/kubernetes (one Pod per try). Both pass executor/executortest.
package executor
