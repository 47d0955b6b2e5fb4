// Package pgtest (test support only) starts a throw-away PostgreSQL server for tests: initdb
// into a temporary directory, postgres on a free loopback port (and a unix
// socket in the same directory), run as the unprivileged "postgres" user
// when the tests run as root. The Debian package postgresql provides the
// binaries (scripts/deps.txt); without them the tests skip, except in CI
// (CI set), where that is a failure.
package pgtest
