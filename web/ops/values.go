package ops

import (
	"context"
	"fmt"

	"updraft/dags"
	"updraft/store"
)

// SecretMask replaces the value of a secret variable wherever it is shown.
const SecretMask = "***"

// VariableValue is a variable's value as it may be shown: masked when the
// variable is secret or its key sounds like one.
func VariableValue(v store.Variable) string {
	if v.Secret || dags.SensitiveName(v.Key) {
		return SecretMask
	}
	return v.Value
}

// SetVariable validates and saves a variable; a secret one (by key, or
// replacing a secret) is taught to the masker before any task can read it.
func (s *Service) SetVariable(ctx context.Context, v store.Variable, actor, action string) error {
	if !dags.ValidVariableKey(v.Key) {
		return Invalid("variable key %q: use letters, digits, '_', '-' and '.' (at most 250)", v.Key)
	}
	if dags.SensitiveName(v.Key) {
		v.Secret = true
	}
	if old, err := s.Store.Variable(ctx, v.Key); err == nil && old.Secret {
		v.Secret = true // replacing a secret keeps it secret
	}
	if v.Secret {
		s.Teach(v.Value)
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = s.Now()
	}
	if err := s.Store.SetVariable(ctx, v); err != nil {
		return err
	}
	s.Audit(ctx, actor, action, "", "", "", "key="+v.Key)
	return nil
}

// DeleteVariable deletes a variable; an unknown key is ErrNotFound.
func (s *Service) DeleteVariable(ctx context.Context, key, actor string) error {
	if err := s.Store.DeleteVariable(ctx, key); err != nil {
		return err
	}
	s.Audit(ctx, actor, "variable_delete", "", "", "", "key="+key)
	return nil
}

// DefaultPool is the pool of tasks that name none; it cannot be deleted.
const DefaultPool = "default_pool"

// ValidatePool checks a pool before it is saved.
func ValidatePool(p store.Pool) error {
	if !dags.ValidVariableKey(p.Name) {
		return Invalid("pool name %q: use letters, digits, '_', '-' and '.' (at most 250)", p.Name)
	}
	if p.Slots < 0 {
		return Invalid("pool %s: slots must be 0 or more, not %d", p.Name, p.Slots)
	}
	return nil
}

// CheckPoolDelete refuses to delete the default pool.
func CheckPoolDelete(name string) error {
	if name == DefaultPool {
		return Invalid("%s cannot be deleted: tasks that name no pool use it", DefaultPool)
	}
	return nil
}

// SetPool validates and saves a pool.
func (s *Service) SetPool(ctx context.Context, p store.Pool, actor, action string) error {
	if err := ValidatePool(p); err != nil {
		return err
	}
	if err := s.Store.SetPool(ctx, p); err != nil {
		return err
	}
	s.Audit(ctx, actor, action, "", "", "", fmt.Sprintf("pool=%s slots=%d", p.Name, p.Slots))
	return nil
}

// DeletePool deletes a pool other than the default one.
func (s *Service) DeletePool(ctx context.Context, name, actor string) error {
	if err := CheckPoolDelete(name); err != nil {
		return err
	}
	if err := s.Store.DeletePool(ctx, name); err != nil {
		return err
	}
	s.Audit(ctx, actor, "pool_delete", "", "", "", "pool="+name)
	return nil
}

// PoolView is a pool with what its task instances hold now.
type PoolView struct {
	store.Pool
	Running, Queued, Open int
	Tasks                 int // tasks of the loaded DAGs that use it
}

// Pools returns every pool with its use, and the pools tasks name that do
// not exist (with how many tasks name each).
func (s *Service) Pools(ctx context.Context) ([]PoolView, map[string]int, error) {
	pools, err := s.Store.Pools(ctx)
	if err != nil {
		return nil, nil, err
	}
	use, err := s.Store.PoolUsage(ctx)
	if err != nil {
		return nil, nil, err
	}
	tasks := map[string]int{}
	if res, _ := s.Bag.Current(); res != nil {
		for _, d := range res.DAGs {
			for _, t := range d.Tasks {
				tasks[t.Pool]++
			}
		}
	}
	out := make([]PoolView, 0, len(pools))
	for _, p := range pools {
		u := use[p.Name]
		out = append(out, PoolView{Pool: p, Running: u.Running, Queued: u.Queued, Open: max(0, p.Slots-u.Running-u.Queued), Tasks: tasks[p.Name]})
		delete(tasks, p.Name)
	}
	return out, tasks, nil
}
