package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// User is a person or a script allowed into the web UI and the REST API.
// The store keeps the password hash only; hashing is the caller's.
type User struct {
	Username     string
	PasswordHash string
	Role         string // Viewer, User, Op or Admin
	FirstName    string
	LastName     string
	Email        string
	CreatedAt    time.Time
	LastLogin    *time.Time
}

const userCols = `username, password_hash, role, first_name, last_name, email, created_at, last_login`

func scanUser(sc interface{ Scan(...any) error }) (User, error) {
	var u User
	var created string
	var last sql.NullString
	err := sc.Scan(&u.Username, &u.PasswordHash, &u.Role, &u.FirstName, &u.LastName, &u.Email, &created, &last)
	u.CreatedAt, u.LastLogin = parseTS(created), parseTSPtr(last)
	return u, err
}

// CreateUser adds a user; ErrConflict if the username is taken.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	_, err := s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)`,
		u.Username, u.PasswordHash, u.Role, u.FirstName, u.LastName, u.Email, ts(u.CreatedAt))
	if isUnique(err) {
		return fmt.Errorf("user %q: %w", u.Username, ErrConflict)
	}
	return err
}

// User returns one user, or ErrNotFound.
func (s *Store) User(ctx context.Context, username string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	return u, err
}

// Users returns every user, by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser rewrites a user's password hash, role and names; ErrNotFound
// if there is no such user. A changed password or role ends the user's
// sessions, so they take effect at once.
func (s *Store) UpdateUser(ctx context.Context, u User) error {
	return s.InTx(ctx, func(tx *Store) error {
		old, err := tx.User(ctx, u.Username)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `UPDATE users SET password_hash = ?, role = ?, first_name = ?, last_name = ?, email = ? WHERE username = ?`,
			u.PasswordHash, u.Role, u.FirstName, u.LastName, u.Email, u.Username); err != nil {
			return err
		}
		if old.PasswordHash != u.PasswordHash || old.Role != u.Role {
			_, err = tx.exec(ctx, `DELETE FROM sessions WHERE username = ?`, u.Username)
		}
		return err
	})
}

// DeleteUser removes a user and their sessions; ErrNotFound if none.
func (s *Store) DeleteUser(ctx context.Context, username string) error {
	return s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE username = ?`, username); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `DELETE FROM users WHERE username = ?`, username)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %q: %w", username, ErrNotFound)
		}
		return nil
	})
}

// Session is a browser login. Only a hash of the cookie value is stored,
// so reading the database does not let anyone log in.
type Session struct {
	TokenHash string
	Username  string
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateSession records a login and the user's last login time.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	return s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `INSERT INTO sessions (token_hash, username, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			se.TokenHash, se.Username, se.CSRFToken, ts(se.CreatedAt), ts(se.ExpiresAt)); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `UPDATE users SET last_login = ? WHERE username = ?`, ts(se.CreatedAt), se.Username)
		return err
	})
}

// Session returns the live session with the given token hash, or
// ErrNotFound (also when it has expired at now).
func (s *Store) Session(ctx context.Context, tokenHash string, now time.Time) (Session, error) {
	var se Session
	var created, expires string
	err := s.queryRow(ctx, `SELECT token_hash, username, csrf_token, created_at, expires_at FROM sessions WHERE token_hash = ?`, tokenHash).
		Scan(&se.TokenHash, &se.Username, &se.CSRFToken, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return se, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return se, err
	}
	se.CreatedAt, se.ExpiresAt = parseTS(created), parseTS(expires)
	if !now.Before(se.ExpiresAt) {
		return se, fmt.Errorf("session expired: %w", ErrNotFound)
	}
	return se, nil
}

// DeleteSession ends a session (logout); deleting a missing one is no error.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	return err
}

// DeleteExpiredSessions removes sessions expired at now.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, ts(now))
	return err
}
