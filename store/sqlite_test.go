package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"updraft/store"
	"updraft/store/storetest"
)

func openSQLite(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "updraft.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T) { storetest.Run(t, openSQLite) }

func TestOpenErrors(t *testing.T) {
	for _, dsn := range []string{"postgres://127.0.0.1:1/x?connect_timeout=2", "sqlite:", "mysql:x"} {
		if _, err := store.Open(context.Background(), dsn); err == nil {
			t.Errorf("%s: no error", dsn)
		}
	}
}

// Several processes (here: stores) migrating one database at once all
// succeed, and the schema is applied once.
func TestConcurrentMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			s, err := store.Open(context.Background(), "sqlite:"+path)
			if err == nil {
				err = s.Migrate(context.Background())
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
