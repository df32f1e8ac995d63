package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"updraft/store"
	"updraft/store/pgtest"
	"updraft/store/storetest"
)

// The same conformance suite on a real PostgreSQL, a database per test.
func TestPostgresConformance(t *testing.T) {
	pg := pgtest.Start(t)
	var n atomic.Int32
	storetest.Run(t, func(t *testing.T) *store.Store {
		dsn := pg.CreateDB(t, fmt.Sprintf("conf_%d", n.Add(1)))
		s, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Replicas starting together migrate one database without stepping on
// each other.
func TestPostgresConcurrentMigrations(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "mig")
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(context.Background(), dsn)
			if err == nil {
				err = s.Migrate(context.Background())
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://updraft:hunter2@db:5432/u?sslmode=require": "postgres://updraft:xxx@db:5432/u?sslmode=require",
		"postgres://updraft@db/u":                              "postgres://updraft@db/u",
		"sqlite:/var/lib/updraft.db":                           "sqlite:/var/lib/updraft.db",
	} {
		if got := store.RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q", in, got)
		}
	}
	if _, err := store.Open(context.Background(), "postgres://updraft:hunter2@127.0.0.1:1/u?connect_timeout=2"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("open error: %v", err)
	}
}
