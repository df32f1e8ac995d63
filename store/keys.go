package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SigningKey is one key of a rotating set (the API's token keys): the
// newest signs, every listed one verifies.
type SigningKey struct {
	ID        string // unique within the set
	Secret    []byte
	CreatedAt time.Time
}

// SigningKeys returns a set's keys, newest first.
func (s *Store) SigningKeys(ctx context.Context, set string) ([]SigningKey, error) {
	rows, err := s.query(ctx, `SELECT name, value, created_at FROM server_keys WHERE name LIKE ? ORDER BY created_at DESC, name DESC`, set+":%")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var name, value, created string
		if err := rows.Scan(&name, &value, &created); err != nil {
			return nil, err
		}
		secret, err := hex.DecodeString(value)
		if err != nil || len(secret) < 32 {
			return nil, fmt.Errorf("signing key %s is damaged", name)
		}
		out = append(out, SigningKey{ID: strings.TrimPrefix(name, set+":"), Secret: secret, CreatedAt: parseTS(created)})
	}
	return out, rows.Err()
}

// AddSigningKey adds a fresh key (64 random bytes) to a set; it signs from
// now on. Keys superseded before retireBefore are removed in the same
// call: the tokens they signed have expired.
func (s *Store) AddSigningKey(ctx context.Context, set string, at, retireBefore time.Time) (SigningKey, error) {
	secret := make([]byte, 64)
	if _, err := rand.Read(secret); err != nil {
		return SigningKey{}, err
	}
	k := SigningKey{ID: strconv.FormatInt(at.UnixNano(), 36), Secret: secret, CreatedAt: at}
	err := s.InTx(ctx, func(tx *Store) error {
		old, err := tx.SigningKeys(ctx, set)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO server_keys (name, value, created_at) VALUES (?, ?, ?)`,
			set+":"+k.ID, hex.EncodeToString(secret), ts(at)); err != nil {
			return err
		}
		// old is newest first: old[i] was superseded when old[i-1] (or the
		// new key, for old[0]) was created.
		superseded := at
		for _, o := range old {
			if superseded.Before(retireBefore) {
				if _, err := tx.exec(ctx, `DELETE FROM server_keys WHERE name = ?`, set+":"+o.ID); err != nil {
					return err
				}
			}
			superseded = o.CreatedAt
		}
		return nil
	})
	return k, err
}

// EnsureSigningKey returns the set's newest key, creating the first one
// when the set is empty. Replicas starting together may each create one;
// all of them verify, the newest signs.
func (s *Store) EnsureSigningKey(ctx context.Context, set string, at time.Time) (SigningKey, error) {
	keys, err := s.SigningKeys(ctx, set)
	if err != nil {
		return SigningKey{}, err
	}
	if len(keys) > 0 {
		return keys[0], nil
	}
	return s.AddSigningKey(ctx, set, at, time.Time{})
}
