package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"updraft/dags"
	"updraft/web"
)

// serverConfig is the server's configuration: defaults, then UPDRAFT_*
// environment variables, then flags.
type serverConfig struct {
	DAGs     string
	Listen   string
	Interval time.Duration
}

func (m Main) serverConfig(args []string) (serverConfig, error) {
	cfg := serverConfig{DAGs: "dags", Listen: "127.0.0.1:8080", Interval: 2 * time.Second}
	if v := m.Env("UPDRAFT_DAGS"); v != "" {
		cfg.DAGs = v
	}
	if v := m.Env("UPDRAFT_LISTEN"); v != "" {
		cfg.Listen = v
	}
	if v := m.Env("UPDRAFT_DAGS_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("UPDRAFT_DAGS_INTERVAL: %w", err)
		}
		cfg.Interval = d
	}
	fl := flag.NewFlagSet("server", flag.ContinueOnError)
	fl.SetOutput(m.Stderr)
	fl.StringVar(&cfg.DAGs, "dags", cfg.DAGs, "folder of DAG files (env UPDRAFT_DAGS)")
	fl.StringVar(&cfg.Listen, "listen", cfg.Listen, "address of the web server (env UPDRAFT_LISTEN)")
	fl.DurationVar(&cfg.Interval, "dags-interval", cfg.Interval, "how often the DAG folder is checked for changes (env UPDRAFT_DAGS_INTERVAL)")
	if err := fl.Parse(args); err != nil {
		return cfg, err
	}
	if cfg.Interval <= 0 {
		return cfg, errors.New("--dags-interval must be positive")
	}
	return cfg, nil
}

// server loads the DAG folder, keeps it loaded, and serves the web UI until
// ctx ends, then shuts the HTTP server down gracefully.
func (m Main) server(ctx context.Context, logger *slog.Logger, args []string) int {
	cfg, err := m.serverConfig(args)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 2
	}
	if st, err := os.Stat(cfg.DAGs); err != nil || !st.IsDir() {
		fmt.Fprintf(m.Stderr, "updraft server: DAG folder %s: not a readable folder\n", cfg.DAGs)
		return 2
	}
	folder := dags.NewFolder(os.DirFS(cfg.DAGs), cfg.Interval, logger)
	folder.Refresh()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintln(m.Stderr, "updraft server:", err)
		return 1
	}
	srv := &http.Server{Handler: web.New(folder, logger, time.Now), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("updraft server started", "url", "http://"+ln.Addr().String(), "dags", cfg.DAGs, "version", version)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return folder.Run(ctx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	if err := g.Wait(); err != nil {
		logger.Error("server stopped", "err", err)
		return 1
	}
	logger.Info("updraft server stopped")
	return 0
}
