package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"updraft/store"
)

// A long write lets a writer queued behind it in at a Yield: what it did
// before the Yield is committed, the queued write lands in between, and
// what follows commits (or rolls back) on its own. Without a queued
// writer Yield does nothing, and a failure after it rolls back only the
// work since.
func TestYieldLetsAQueuedWriterIn(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	set := func(st *store.Store, k string) error {
		return st.SetVariable(ctx, store.Variable{Key: k, Value: "v", UpdatedAt: time.Now()})
	}
	has := func(k string) bool {
		_, err := s.Variable(ctx, k)
		return err == nil
	}
	queued := make(chan error, 1)
	landed := make(chan bool, 1)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *store.Store) error {
		if yielded, err := tx.Yield(ctx); yielded || err != nil {
			t.Errorf("Yield with nobody waiting = %v, %v", yielded, err)
		}
		if err := set(tx, "before"); err != nil {
			return err
		}
		go func() { queued <- set(s, "queued") }()
		for deadline := time.Now().Add(10 * time.Second); ; {
			yielded, err := tx.Yield(ctx)
			if err != nil {
				return err
			}
			if yielded {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the queued writer never waited")
			}
			time.Sleep(time.Millisecond)
		}
		if err := <-queued; err != nil {
			t.Errorf("queued write: %v", err)
		}
		landed <- has("before") && has("queued")
		if err := set(tx, "after"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if !<-landed {
		t.Error("at the Yield, the work before it or the queued write was not committed")
	}
	if !has("before") || !has("queued") || has("after") {
		t.Errorf("before %v queued %v after %v; want the failure to roll back only what followed the Yield", has("before"), has("queued"), has("after"))
	}
	// The writer is free again.
	if err := set(s, "later"); err != nil {
		t.Fatal(err)
	}
}
