package kafkasink

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// Each SASL mechanism against kfake's: the right password produces, read
// back by a consumer with the same credentials; a wrong one makes the sink
// unhealthy, with a message that never shows the password.
func TestSASL(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic), kfake.EnableSASL(),
		kfake.Superuser(SASLPlain, "alice", "plain-secret"),
		kfake.Superuser(SASLScramSHA256, "bob", "scram256-secret"),
		kfake.Superuser(SASLScramSHA512, "carol", "scram512-secret"))
	for _, tc := range []struct {
		mechanism, user, password string
		consumer                  kgo.Opt
	}{
		{"plain", "alice", "plain-secret", kgo.SASL(plain.Auth{User: "alice", Pass: "plain-secret"}.AsMechanism())},
		{"SCRAM-SHA-256", "bob", "scram256-secret", kgo.SASL(scram.Auth{User: "bob", Pass: "scram256-secret"}.AsSha256Mechanism())},
		{"scram-sha-512", "carol", "scram512-secret", kgo.SASL(scram.Auth{User: "carol", Pass: "scram512-secret"}.AsSha512Mechanism())},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(c)
			cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = tc.mechanism, tc.user, tc.password
			s := newSink(t, cfg)
			waitHealthy(t, s)
			d := newDispatcher(t, s)
			if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels(tc.user, 9)), 10*time.Second); err != nil {
				t.Fatalf("SubmitAndWait() = %v; want nil", err)
			}
			got := readBack(t, c.ListenAddrs(), testTopic, tc.consumer)
			for _, p := range parcels(tc.user, 9) {
				if n := len(got[p.ID]); n != 1 {
					t.Errorf("records of %s = %d; want 1", p.ID, n)
				}
			}

			cfg.SASLPassword = "wrong-" + tc.password
			// kfake answers a wrong password by closing the connection,
			// so the check fails only when it times out.
			cfg.CheckTimeout = 300 * time.Millisecond
			bad := newSink(t, cfg)
			err := bad.Healthy()
			if err == nil {
				t.Fatal("Healthy() with a wrong password = nil; want an error")
			}
			t.Logf("Healthy() with a wrong password: %v", err)
			if strings.Contains(err.Error(), tc.password) {
				t.Errorf("Healthy() = %v shows the password", err)
			}
		})
	}
}

// TLS against kfake's: with the authority that signed the brokers'
// certificate (KAFKA_TLS_CA) the sink produces, here with SCRAM on top;
// with the system's roots, which do not know it, the sink is unhealthy and
// says why.
func TestTLS(t *testing.T) {
	t.Parallel()
	caPEM, serverCert := selfSignedCert(t)
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser(SASLScramSHA512, "dave", "tls-secret"))
	cfg := testConfig(c)
	cfg.TLS, cfg.CAPEM = true, caPEM
	cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = SASLScramSHA512, "dave", "tls-secret"
	s := newSink(t, cfg)
	waitHealthy(t, s)
	d := newDispatcher(t, s)
	if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("tls", 9)), 10*time.Second); err != nil {
		t.Fatalf("SubmitAndWait() = %v; want nil", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	got := readBack(t, c.ListenAddrs(), testTopic, kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(scram.Auth{User: "dave", Pass: "tls-secret"}.AsSha512Mechanism()))
	if len(got) != 9 {
		t.Errorf("records read back over TLS = %d; want 9", len(got))
	}

	cfg.CAPEM = nil // the system's roots
	bad := newSink(t, cfg)
	// A check that times out before a handshake failed says less.
	waitFor(t, 20*time.Second, "Healthy() with an unknown authority a certificate error", func() bool {
		err := bad.Healthy()
		return err != nil && strings.Contains(err.Error(), "certificate")
	})
}

// selfSignedCert returns a certificate for 127.0.0.1 that is its own
// authority, in PEM (what KAFKA_TLS_CA names), and the same with its key
// for the brokers.
func selfSignedCert(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	der, key, _ := testutil.SelfSignedCert(t)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
