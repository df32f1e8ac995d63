// Package executor defines the contract between the scheduler and what runs
// a task try: executor/local (child processes) and executor/kubernetes (one
// Pod per try), held to one conformance suite. (Arrives with the engine.)
package executor
