package scheduler

import (
	"fmt"
	"sync/atomic"
	"testing"

	"updraft/store/pgtest"
)

// The engine scenarios again, on a throwaway PostgreSQL: each harness gets
// a database of its own.
func TestScenariosOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	var n atomic.Int32
	harnessDB = func(t *testing.T) string { return pg.CreateDB(t, fmt.Sprintf("s%d", n.Add(1))) }
	defer func() { harnessDB = nil }()
	for name, fn := range map[string]func(*testing.T){
		"YearOfDailyCatchup": TestYearOfDailyCatchup, "ScheduleAcrossDST": TestScheduleAcrossDST,
		"CatchupFalseRunsOnlyTheLatest": TestCatchupFalseRunsOnlyTheLatest, "EveryTriggerRuleInARun": TestEveryTriggerRuleInARun,
		"AllDoneLeavesDecideTheRun": TestAllDoneLeavesDecideTheRun, "RetriesWithBackoff": TestRetriesWithBackoff,
		"RetriesExhausted": TestRetriesExhausted, "DagrunTimeout": TestDagrunTimeout, "DependsOnPast": TestDependsOnPast,
		"ConcurrencyLimits": TestConcurrencyLimits, "PriorityWeight": TestPriorityWeight, "ClearAndMark": TestClearAndMark,
		"MarkTasksAndSetRunState": TestMarkTasksAndSetRunState, "ClearRunningTask": TestClearRunningTask,
		"TriggerAndPause": TestTriggerAndPause, "RenderErrorFailsTheTry": TestRenderErrorFailsTheTry,
		"RecoverAfterRestart": TestRecoverAfterRestart, "GlobalParallelism": TestGlobalParallelism,
		"WaitForDownstream": TestWaitForDownstream, "RunKeepsItsVersion": TestRunKeepsItsVersion,
		"RunKeepsItsVersionAcrossRestart": TestRunKeepsItsVersionAcrossRestart, "QueuedRunStartsWhenARunEnds": TestQueuedRunStartsWhenARunEnds,
		"AlertsRecorded": TestAlertsRecorded, "ImportErrorAlerts": TestImportErrorAlerts,
		"BackfillRunsTheRangeUnderItsOwnLimit": TestBackfillRunsTheRangeUnderItsOwnLimit, "BackfillCancel": TestBackfillCancel,
		"BackfillSurvivesARestart": TestBackfillSurvivesARestart, "DeadlinesAndSLAsAreMissedOnce": TestDeadlinesAndSLAsAreMissedOnce,
	} {
		t.Run(name, fn)
	}
}
