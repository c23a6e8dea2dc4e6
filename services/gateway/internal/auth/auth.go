// Package auth authenticates the shop's users and issues and verifies their
// access tokens: HS256-signed JWTs (github.com/golang-jwt/jwt/v5) carrying the
// user's id as the subject and their role.
//
// The user directory is a fixed set of demo accounts (documented in the
// gateway README): microshop is a reference shop, and identity management is
// not one of the patterns it teaches. A real deployment puts an identity
// provider here; only Directory would change.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// Roles a user can have.
const (
	RoleCustomer = "customer"
	RoleAdmin    = "admin"
)

// Errors returned by Login and Verify.
var (
	ErrBadCredentials = errors.New("unknown user or wrong password")
	ErrInvalidToken   = errors.New("invalid access token")
)

// User is an authenticated principal.
type User struct {
	// ID is the stable id orders are kept under, e.g. "cus_alice".
	ID string
	// Username is what the user logs in with.
	Username string
	// Role is RoleCustomer or RoleAdmin.
	Role string
}

type account struct {
	user         User
	passwordHash []byte // bcrypt
}

// Directory is the set of demo accounts. It is read-only and safe for
// concurrent use.
type Directory struct {
	accounts map[string]account
}

// DemoDirectory returns the demo accounts documented in the gateway README.
// The hashes are bcrypt (cost 10) of "alice-demo", "bob-demo" and "admin-demo".
func DemoDirectory() *Directory {
	return &Directory{accounts: map[string]account{
		"alice": {User{ID: "cus_alice", Username: "alice", Role: RoleCustomer}, []byte("$2a$10$pNKDiWoveRx0yB.VS2sfWOf.nEkUOB38k0WUVlz4z.u7.N5yIw6G.")},
		"bob":   {User{ID: "cus_bob", Username: "bob", Role: RoleCustomer}, []byte("$2a$10$wi5TdBqniM9u.w4GMdfMu.skCJ9D0ixgwxSRtgMhH23jJbRDjS8kC")},
		"admin": {User{ID: "adm_admin", Username: "admin", Role: RoleAdmin}, []byte("$2a$10$xI8AGIU46NkgXM5271ickeRTWaLPxOO7QsF54jrfWt9pgP3vhqr4.")},
	}}
}

// dummyHash is compared against when the user is unknown, so that a login
// takes as long for an unknown user as for a wrong password.
var dummyHash = []byte("$2a$10$xI8AGIU46NkgXM5271ickeRTWaLPxOO7QsF54jrfWt9pgP3vhqr4.")

// Login checks a username and password; any mismatch is ErrBadCredentials.
func (d *Directory) Login(_ context.Context, username, password string) (User, error) {
	acc, ok := d.accounts[username]
	hash := acc.passwordHash
	if !ok {
		hash = dummyHash
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil || !ok {
		return User{}, ErrBadCredentials
	}
	return acc.user, nil
}

// Tokens issues and verifies access tokens. Its fields are fixed after
// NewTokens; it is safe for concurrent use.
type Tokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

const (
	issuer   = "microshop-gateway"
	audience = "microshop-api"
)

// MinKeyLen is the shortest signing key NewTokens accepts (HS256 wants at
// least 256 bits).
const MinKeyLen = 32

// NewTokens returns Tokens signing with key (at least MinKeyLen bytes), valid
// for ttl, reading the time from now.
func NewTokens(key []byte, ttl time.Duration, now func() time.Time) (*Tokens, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("token signing key is %d bytes, want at least %d", len(key), MinKeyLen)
	}
	return &Tokens{key: key, ttl: ttl, now: now}, nil
}

type claims struct {
	Role string `json:"role"`
	jwt.RegisteredClaims
}

// Issue returns a signed token for u and when it expires.
func (t *Tokens) Issue(u User) (token string, expires time.Time, err error) {
	now := t.now()
	expires = now.Add(t.ttl)
	c := claims{
		Role: u.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return token, expires, nil
}

// Verify parses token and returns its user. Only HS256 with our key, our
// issuer and audience, and an unexpired expiry are accepted: "alg: none",
// another algorithm, a tampered payload, another key or a missing or past
// expiry all give ErrInvalidToken.
func (t *Tokens) Verify(token string) (User, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return User{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" || (c.Role != RoleCustomer && c.Role != RoleAdmin) {
		return User{}, fmt.Errorf("%w: missing subject or unknown role", ErrInvalidToken)
	}
	return User{ID: c.Subject, Role: c.Role}, nil
}
