package main

import (
	"context"
	"fmt"
	"log/slog"
)

func (m Main) server(ctx context.Context, logger *slog.Logger, args []string) int {
	fmt.Fprintln(m.Stderr, "updraft server: not built yet")
	return 2
}
