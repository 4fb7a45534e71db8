// Package testutil holds what the tests of several packages need alike: a
// log buffer that concurrent writers may share, sinks and dispatchers
// closed when a test ends, a self-signed certificate, and a reading of the
// metrics a sink writes (exposition.go). Only tests import it.
package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// SyncBuffer collects what a logger writes while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Closer is a sink, or anything else closed within a context.
type Closer interface {
	Close(ctx context.Context) error
}

// CloseAtEnd closes c, within timeout, when the test ends. Its error is
// dropped: the test has checked what it wanted; this frees what c holds.
func CloseAtEnd(t testing.TB, c Closer, timeout time.Duration) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = c.Close(ctx)
	})
}

// StartDispatcher builds and starts a Dispatcher storing in s, with one
// shard whatever the host (a request may hold all of maxQueue), and shuts
// it down when the test ends if the test did not.
func StartDispatcher(t testing.TB, s ingest.Sink, maxQueue, maxWorkers int) *ingest.Dispatcher {
	t.Helper()
	d, err := ingest.New(ingest.Config{MaxQueue: maxQueue, MaxWorkers: maxWorkers, Sink: s, Shards: 1})
	if err != nil {
		t.Fatalf("ingest.New() error = %v", err)
	}
	d.Start()
	CloseAtEnd(t, shutdowner{d}, 10*time.Second)
	return d
}

// shutdowner closes a Dispatcher by shutting it down.
type shutdowner struct{ d *ingest.Dispatcher }

func (s shutdowner) Close(ctx context.Context) error { return s.d.Shutdown(ctx) }

// SelfSignedCert returns a certificate for 127.0.0.1, valid for the hour
// around now, that is its own authority, in DER with its key, and a pool
// that trusts it: what a test's TLS server presents and its client trusts.
func SelfSignedCert(t testing.TB) (der []byte, key *ecdsa.PrivateKey, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fastingest test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own issuer, so that a pool can hold it
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return der, key, pool
}

// NumberedBatch is the JSON body of n reference-shaped parcels whose ids,
// prefix-p<i>, say who sent them, so that a load test can look for every
// acknowledged parcel afterwards; ids are those ids, in order.
func NumberedBatch(prefix string, n int) (ids []string, body string) {
	ids = make([]string, n)
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i := range ids {
		ids[i] = prefix + "-p" + strconv.Itoa(i)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"time":"2017-01-01T00:00:01Z","data":"payload %d"}`, ids[i], i)
	}
	b.WriteString(`]}`)
	return ids, b.String()
}
