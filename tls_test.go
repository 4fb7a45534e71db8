//go:build unix

package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastingest/fastingest/internal/testutil"
)

// selfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key as PEM files in a temporary directory, and returns their paths
// and a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	der, key, pool := testutil.SelfSignedCert(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// randomToken returns a bearer token no log line can contain by chance.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tok-" + hex.EncodeToString(b)
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, client *http.Client, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", method, url, err)
	}
	return resp, string(b)
}

// loadSecrets reads the token file, trimming the newline editors and
// echo add, refuses a file whose content is not one token without showing
// it, and builds a TLS configuration of TLS 1.2 or later.
func TestLoadSecrets(t *testing.T) {
	certFile, keyFile, _ := selfSignedCert(t)
	dir := t.TempDir()
	file := func(content string) string {
		f, err := os.CreateTemp(dir, "token")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(content); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}
	for _, tc := range []struct {
		name      string
		content   string
		wantToken string // "": an error
	}{
		{"no newline", "tok", "tok"},
		{"newline", "tok\n", "tok"},
		{"CRLF", "tok\r\n", "tok"},
		{"blank lines after", "tok\n\n", "tok"},
		{"two lines", "tok\nother\n", ""},
		{"space inside", "two words\n", ""},
		{"only a newline", "\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config{AuthTokenFile: file(tc.content)}
			_, err := c.loadSecrets()
			switch {
			case tc.wantToken == "" && err == nil:
				t.Fatalf("loadSecrets() with a token file holding %q = nil error, token %q; want an error", tc.content, c.AuthToken)
			case tc.wantToken == "":
				if tc.content != "\n" && strings.Contains(err.Error(), strings.TrimSpace(tc.content)) {
					t.Errorf("error %q shows the file's content", err)
				}
			case err != nil:
				t.Fatalf("loadSecrets() with a token file holding %q: %v", tc.content, err)
			case c.AuthToken != tc.wantToken:
				t.Errorf("token from a file holding %q = %q; want %q", tc.content, c.AuthToken, tc.wantToken)
			}
		})
	}

	c := config{TLSCert: certFile, TLSKey: keyFile}
	tlsConfig, err := c.loadSecrets()
	if err != nil {
		t.Fatalf("loadSecrets() with a valid certificate: %v", err)
	}
	if tlsConfig == nil || len(tlsConfig.Certificates) != 1 || tlsConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("TLS config = %+v; want one certificate and MinVersion TLS 1.2 or later", tlsConfig)
	}
	if tlsConfig, err := (&config{}).loadSecrets(); tlsConfig != nil || err != nil {
		t.Errorf("loadSecrets() without TLS settings = %v, %v; want nil, nil", tlsConfig, err)
	}
}
