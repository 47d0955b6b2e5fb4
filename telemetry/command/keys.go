package command

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// PublicKey is one fleet key the robot trusts.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// String formats the key as the config value "<key_id>:<base64>".
func (k PublicKey) String() string { return FormatPublicKey(k.ID, k.Key) }

// SigningKey is the fleet's private key with its ID.
type SigningKey struct {
	ID  string
	Key ed25519.PrivateKey
}

// Public returns the matching public key.
func (k SigningKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// KeyRing is the set of fleet public keys a robot accepts commands from
// (agent.commands.fleet_keys). Keys are rotated by listing the new key
// next to the old one, then removing the old one. The zero KeyRing trusts
// nobody.
type KeyRing struct {
	keys []PublicKey
}

// NewKeyRing checks the keys (valid ID, 32 bytes, unique ID and key, at
// most 16) and returns the ring.
func NewKeyRing(keys ...PublicKey) (*KeyRing, error) {
	if len(keys) > maxKeys {
		return nil, fmt.Errorf("command: %d fleet keys, at most %d", len(keys), maxKeys)
	}
	r := &KeyRing{}
	for _, k := range keys {
		if !keyIDRe.MatchString(k.ID) {
			return nil, fmt.Errorf("command: fleet key ID %q: want 1..64 of [A-Za-z0-9._-] starting with a letter or digit", k.ID)
		}
		if len(k.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("command: fleet key %q: %d bytes, want %d", k.ID, len(k.Key), ed25519.PublicKeySize)
		}
		for _, o := range r.keys {
			if o.ID == k.ID {
				return nil, fmt.Errorf("command: fleet key ID %q listed twice", k.ID)
			}
			if o.Key.Equal(k.Key) {
				return nil, fmt.Errorf("command: fleet keys %q and %q are the same key", o.ID, k.ID)
			}
		}
		r.keys = append(r.keys, PublicKey{ID: k.ID, Key: bytes.Clone(k.Key)})
	}
	return r, nil
}

// ParseKeyRing parses config values "<key_id>:<base64>" (see
// ParsePublicKey) into a ring.
func ParseKeyRing(values ...string) (*KeyRing, error) {
	keys := make([]PublicKey, 0, len(values))
	for _, v := range values {
		k, err := ParsePublicKey(v)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return NewKeyRing(keys...)
}

// ReadKeyFile parses a key file: one "<key_id>:<base64>" per line; blank
// lines and lines starting with '#' are ignored.
func ReadKeyFile(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := ParsePublicKey(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// Len is the number of keys.
func (r *KeyRing) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Keys returns a copy of the keys.
func (r *KeyRing) Keys() []PublicKey {
	if r == nil {
		return nil
	}
	return append([]PublicKey(nil), r.keys...)
}

// verify checks sig over msg with the key named keyID, or with every key
// when keyID is empty, and returns the ID of the key that verified.
func (r *KeyRing) verify(keyID string, msg, sig []byte) (string, error) {
	if r.Len() == 0 {
		return "", errors.New("no fleet keys configured (agent.commands.fleet_keys): commands are disabled")
	}
	for _, k := range r.keys {
		if keyID != "" && k.ID != keyID {
			continue
		}
		if ed25519.Verify(k.Key, msg, sig) {
			return k.ID, nil
		}
		if keyID != "" {
			return "", fmt.Errorf("signature does not verify with key %q", keyID)
		}
	}
	if keyID != "" {
		return "", fmt.Errorf("unknown key_id %q", keyID)
	}
	return "", errors.New("signature does not verify with any fleet key")
}

// FormatPublicKey formats a public key as "<key_id>:<standard base64 of
// the 32 key bytes>", the form of agent.commands.fleet_keys.
func FormatPublicKey(id string, key ed25519.PublicKey) string {
	return id + ":" + base64.StdEncoding.EncodeToString(key)
}

// ParsePublicKey parses "<key_id>:<standard base64 of 32 bytes>".
func ParsePublicKey(s string) (PublicKey, error) {
	id, enc, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return PublicKey{}, fmt.Errorf("command: fleet key %q: want \"<key_id>:<base64 Ed25519 public key>\"", s)
	}
	if !keyIDRe.MatchString(id) {
		return PublicKey{}, fmt.Errorf("command: fleet key ID %q: want 1..64 of [A-Za-z0-9._-] starting with a letter or digit", id)
	}
	raw, err := b64.DecodeString(enc)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("command: fleet key %q: want the standard base64 of a 32-byte Ed25519 public key", id)
	}
	return PublicKey{ID: id, Key: ed25519.PublicKey(raw)}, nil
}

// GenerateKey makes a new fleet key pair from rand (crypto/rand.Reader
// when nil). keyID must be 1..64 of [A-Za-z0-9._-].
func GenerateKey(rnd io.Reader, keyID string) (SigningKey, error) {
	if !keyIDRe.MatchString(keyID) {
		return SigningKey{}, fmt.Errorf("command: key ID %q: want 1..64 of [A-Za-z0-9._-] starting with a letter or digit", keyID)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return SigningKey{}, fmt.Errorf("command: generate key: %w", err)
	}
	return SigningKey{ID: keyID, Key: priv}, nil
}

// pemKeyIDHeader carries the key ID in the private key PEM block.
const pemKeyIDHeader = "Papscan-Key-Id"

// MarshalSigningKey encodes the private key as a PKCS #8 "PRIVATE KEY"
// PEM block (readable by openssl) with a Papscan-Key-Id header. Store it
// with mode 0600 on the fleet side only; it never goes on a robot.
func MarshalSigningKey(k SigningKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Key)
	if err != nil {
		return nil, fmt.Errorf("command: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{pemKeyIDHeader: k.ID}, Bytes: der}), nil
}

// ParseSigningKey reads a PEM produced by MarshalSigningKey (or an
// openssl Ed25519 PKCS #8 key; then keyID names it, and keyID overrides
// the header when not empty).
func ParseSigningKey(pemBytes []byte, keyID string) (SigningKey, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return SigningKey{}, errors.New("command: signing key: want a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return SigningKey{}, fmt.Errorf("command: signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return SigningKey{}, fmt.Errorf("command: signing key: %T, want Ed25519", k)
	}
	if keyID == "" {
		keyID = blk.Headers[pemKeyIDHeader]
	}
	if !keyIDRe.MatchString(keyID) {
		return SigningKey{}, fmt.Errorf("command: signing key: key ID %q: want 1..64 of [A-Za-z0-9._-]", keyID)
	}
	return SigningKey{ID: keyID, Key: priv}, nil
}

// NewNonce returns 16 random bytes as unpadded base64url (22 characters).
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// NewCommand builds an unsigned command for robot with a random ID and
// nonce, issued now; args is marshalled (nil = no args).
func NewCommand(robot, typ string, args any, now time.Time) (Command, error) {
	c := Command{ID: "c-" + NewNonce(), Type: typ, Robot: robot, IssuedAt: now.UTC(), Nonce: NewNonce()}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return Command{}, fmt.Errorf("command: args: %w", err)
		}
		c.Args = b
	}
	return c, nil
}

// Sign encodes cmd as the body, signs it with key and returns the message
// to publish on the robot's cmd topic. An empty Nonce gets NewNonce(); a
// zero IssuedAt is an error (the fleet's clock must say when).
func Sign(key SigningKey, cmd Command) ([]byte, error) {
	if len(key.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("command: sign: no Ed25519 private key")
	}
	if cmd.IssuedAt.IsZero() {
		return nil, errors.New("command: sign: issued_at is zero")
	}
	if cmd.Nonce == "" {
		cmd.Nonce = NewNonce()
	}
	cmd.IssuedAt = cmd.IssuedAt.UTC()
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("command: sign: %w", err)
	}
	return SignBody(key, body)
}

// SignBody signs body bytes exactly as given (tests use it to sign
// malformed bodies) and returns the Signed message.
func SignBody(key SigningKey, body []byte) ([]byte, error) {
	if len(key.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("command: sign: no Ed25519 private key")
	}
	sig := ed25519.Sign(key.Key, signedBytes(body))
	return json.Marshal(Signed{Schema: Schema, KeyID: key.ID, Body: b64.EncodeToString(body), Sig: b64.EncodeToString(sig)})
}

// signedBytes is what the signature covers: the context string, a NUL,
// then the body bytes exactly as carried (base64-decoded).
func signedBytes(body []byte) []byte {
	m := make([]byte, 0, len(signContext)+len(body))
	return append(append(m, signContext...), body...)
}

// LoadKeyRing builds the ring from config values (agent.commands.fleet_keys)
// and, when file is not empty, the key file (agent.commands.fleet_keys_file;
// a missing file is an error: keys were promised and are not there).
func LoadKeyRing(values []string, file string) (*KeyRing, error) {
	all := append([]string(nil), values...)
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("command: fleet key file: %w", err)
		}
		defer f.Close()
		lines, err := ReadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("command: fleet key file %s: %w", file, err)
		}
		all = append(all, lines...)
	}
	return ParseKeyRing(all...)
}

// Keygen creates a new fleet key pair (the body of `papscan-fleet
// keygen`): it writes the private key as PEM to privPath, mode 0600,
// refusing to overwrite an existing file, and returns the public key line
// for agent.commands.fleet_keys.
func Keygen(keyID, privPath string) (publicLine string, err error) {
	k, err := GenerateKey(nil, keyID)
	if err != nil {
		return "", err
	}
	pemBytes, err := MarshalSigningKey(k)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("command: keygen: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		os.Remove(privPath)
		return "", fmt.Errorf("command: keygen: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(privPath)
		return "", fmt.Errorf("command: keygen: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(privPath)
		return "", fmt.Errorf("command: keygen: %w", err)
	}
	return k.Public().String(), nil
}

// ReadSigningKeyFile reads a private key written by Keygen.
func ReadSigningKeyFile(path string) (SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return SigningKey{}, fmt.Errorf("command: signing key: %w", err)
	}
	return ParseSigningKey(b, "")
}
