package pgtest

import (
	"context"
	"database/sql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"testing"
)

func TestStart(t *testing.T) {
	s := Start(t)
	dsn := s.CreateDB(t, "x")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), "select 41+1").Scan(&n); err != nil || n != 42 {
		t.Fatal(n, err)
	}
}
