package scheduler

import "updraft/store"

// tiID names a task instance within a run: its task and map index.
type tiID struct {
	task     string
	mapIndex int
}

func idOf(ti store.TaskInstance) tiID { return tiID{ti.TaskID, ti.MapIndex} }

// tiCache holds the task instances of runs the scheduler is working on, so
// a step does not read every run back from the store. It is write-through:
// every change the scheduler makes updates it, and anything it cannot
// follow drops it (a compare-and-swap that failed, a command, a rolled
// back transaction, a change made by another process, an expansion). The
// store stays the source of truth.
type tiCache map[string]map[tiID]*store.TaskInstance // run key -> instance

func (c tiCache) get(dagID, runID string) (map[tiID]*store.TaskInstance, bool) {
	m, ok := c[runKey(dagID, runID)]
	return m, ok
}

func (c tiCache) put(dagID, runID string, m map[tiID]*store.TaskInstance) {
	c[runKey(dagID, runID)] = m
}

// update records the new state of one task instance, if its run is cached.
func (c tiCache) update(ti store.TaskInstance) {
	if m, ok := c[runKey(ti.DagID, ti.RunID)]; ok {
		cp := ti
		m[idOf(ti)] = &cp
	}
}

func (c tiCache) drop(dagID, runID string) { delete(c, runKey(dagID, runID)) }

func (c tiCache) reset() { clear(c) }
