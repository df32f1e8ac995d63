package local

import (
	"log/slog"
	"testing"

	"updraft/executor"
	"updraft/executor/executortest"
)

func TestConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, slots int) executor.Executor {
		return New(slots, slog.New(slog.DiscardHandler))
	})
}
