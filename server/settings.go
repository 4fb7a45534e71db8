package server

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults and limits of the Config fields that fastingest's settings set.
// They live here, beside the code that uses them: New fills a zero field
// with its default, fastingest's options table reads the defaults, and both
// check a value with the Validate functions below.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultAckTimeout        = 10 * time.Second
	DefaultReadyMaxQueueWait = time.Second
	// DefaultMaxConns is far below fasthttp's own default of 256K: each
	// connection holds buffers (see fastingest's memory bound).
	DefaultMaxConns       = 16384
	DefaultReadTimeout    = 30 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	DefaultIdleTimeout    = 90 * time.Second
	DefaultMaxHeaderBytes = 8 << 10

	// MaxBodyBytesLimit bounds MaxBodyBytes: a body is read whole into
	// memory before it is decoded.
	MaxBodyBytesLimit = 1 << 30
	// MaxConnsLimit bounds MaxConns.
	MaxConnsLimit = 1_000_000
	// MinMaxHeaderBytes and MaxHeaderBytesLimit bound MaxHeaderBytes,
	// fasthttp's read buffer: every connection holds one.
	MinMaxHeaderBytes   = 1 << 10
	MaxHeaderBytesLimit = 1 << 20
)

// ValidateMaxBodyBytes checks the largest body accepted, in bytes.
func ValidateMaxBodyBytes(n int) error {
	if n < 1 || n > MaxBodyBytesLimit {
		return fmt.Errorf("want a size from 1 to %d bytes", MaxBodyBytesLimit)
	}
	return nil
}

// ValidateMaxConns checks a number of connections served at once.
func ValidateMaxConns(n int) error {
	if n < 1 || n > MaxConnsLimit {
		return fmt.Errorf("want an integer from 1 to %d", MaxConnsLimit)
	}
	return nil
}

// ValidateMaxHeaderBytes checks the largest request line and headers, in
// bytes.
func ValidateMaxHeaderBytes(n int) error {
	if n < MinMaxHeaderBytes || n > MaxHeaderBytesLimit {
		return fmt.Errorf("want a size from %d to %d bytes", MinMaxHeaderBytes, MaxHeaderBytesLimit)
	}
	return nil
}

// ValidateTimeout checks ReadTimeout, WriteTimeout, IdleTimeout or
// AckTimeout: a positive duration (Config's zero stands for the default).
func ValidateTimeout(d time.Duration) error {
	if d <= 0 {
		return errors.New("want a positive duration")
	}
	return nil
}

// ValidateReadyMaxQueueWait checks ReadyMaxQueueWait: 0 (no check) or more.
func ValidateReadyMaxQueueWait(d time.Duration) error {
	if d < 0 {
		return errors.New("want a duration of 0 or more")
	}
	return nil
}

// ValidateAuthToken checks a bearer token: one that can travel in an HTTP
// header as it is, visible ASCII without spaces (RFC 6750's b64token is
// stricter). Empty means no authentication. The error never quotes the
// token.
func ValidateAuthToken(token string) error {
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return errors.New("want a token of visible ASCII characters, without spaces")
		}
	}
	return nil
}

// ParseAck reads an ACK setting, enqueued or persisted, in any case.
func ParseAck(s string) (Ack, error) {
	switch strings.ToLower(s) {
	case "enqueued":
		return AckEnqueued, nil
	case "persisted":
		return AckPersisted, nil
	}
	return AckEnqueued, errors.New("want enqueued or persisted")
}
