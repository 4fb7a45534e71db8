//go:build e2e && unix

package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The binary with TLS_CERT/TLS_KEY and AUTH_TOKEN_FILE serves HTTPS only,
// wants the token (without the file's newline) on POST / and /metrics but
// not on /healthz, never writes the token to its log, and drains cleanly.
func TestTLSAndAuthTokenFile(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	token := randomToken(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "null", "SHUTDOWN_TIMEOUT": "10s",
		"TLS_CERT": certFile, "TLS_KEY": keyFile, "AUTH_TOKEN_FILE": tokenFile,
	})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: httpTimeout}
	addr := p.waitReadyOver(client, "https")
	base := "https://" + addr

	t.Run("POST with token", func(t *testing.T) {
		resp, body := do(t, client, "POST", base+"/", token, referencePayload())
		if resp.StatusCode != http.StatusAccepted || body != `{"accepted":9}` {
			t.Errorf("POST / with the token = %d %s; want 202 {\"accepted\":9}", resp.StatusCode, body)
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			t.Errorf("POST / connection state %+v; want TLS 1.2 or later", resp.TLS)
		}
	})
	t.Run("POST without token", func(t *testing.T) {
		resp, body := do(t, client, "POST", base+"/", "", referencePayload())
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST / without a token = %d %s; want 401", resp.StatusCode, body)
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
			t.Errorf("WWW-Authenticate = %q; want a Bearer challenge", got)
		}
	})
	t.Run("POST with wrong token", func(t *testing.T) {
		resp, body := do(t, client, "POST", base+"/", token+"x", referencePayload())
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST / with a wrong token = %d %s; want 401", resp.StatusCode, body)
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
			t.Errorf("WWW-Authenticate = %q; want error=\"invalid_token\"", got)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		plain := newClient(t)
		req, err := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(referencePayload()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("plain HTTP POST / to the TLS port: %v; want a plain-text 400 saying to use HTTPS", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("plain HTTP POST / to the TLS port = %d %q; want 400 saying to use HTTPS", resp.StatusCode, body)
		}
	})
	t.Run("TLS 1.1", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Errorf("TLS 1.1 handshake succeeded; want it refused (TLS 1.2 or later)")
		}
	})
	t.Run("healthz without token", func(t *testing.T) {
		if resp, body := do(t, client, "GET", base+"/healthz", "", ""); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz = %d %s; want 200", resp.StatusCode, body)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, body := do(t, client, "GET", base+"/metrics", "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics without a token = %d; want 401", resp.StatusCode)
		}
		if strings.Contains(body, "fastingest_parcels_accepted_total") {
			t.Errorf("GET /metrics without a token leaked metrics: %q", body)
		}
		resp, body = do(t, client, "GET", base+"/metrics", token, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics with the token = %d %s; want 200", resp.StatusCode, body)
		}
		if !hasLine(body, "fastingest_parcels_accepted_total 9") {
			t.Errorf("GET /metrics has no line %q:\n%s", "fastingest_parcels_accepted_total 9", body)
		}
	})

	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	if len(log) == 0 {
		t.Fatal("fastingest wrote nothing to stderr")
	}
	wantContains(t, "startup line", log[0], `msg="fastingest listening"`, " tls=true", " auth=true")
	for i, line := range log {
		if strings.Contains(line, token) {
			t.Errorf("log line %d contains the token: %q", i+1, line)
		}
	}
	wantContains(t, "last log line", lastLine(t, log),
		`msg="shutdown complete"`, "accepted=9 completed=9", "failed=0", "not_completed=0", "requests_accepted=1")
}

// hasLine reports whether text has line as one of its lines.
func hasLine(text, line string) bool {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	return false
}

// Secrets and TLS files fastingest cannot use stop it at startup with exit
// code 2 and a message naming the settings, never showing a token.
func TestSecretsConfigExits2(t *testing.T) {
	certFile, keyFile, _ := selfSignedCert(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	const spaced = "two words"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    []string // in stderr
		notWant []string
	}{
		{"TLS_CERT without TLS_KEY", map[string]string{"TLS_CERT": certFile},
			[]string{"TLS_CERT", "TLS_KEY"}, nil},
		{"TLS_KEY without TLS_CERT", map[string]string{"TLS_KEY": keyFile},
			[]string{"TLS_CERT", "TLS_KEY"}, nil},
		{"unreadable TLS_CERT", map[string]string{"TLS_CERT": missing, "TLS_KEY": keyFile},
			[]string{"TLS_CERT", "missing.pem"}, nil},
		{"TLS_KEY not a key", map[string]string{"TLS_CERT": certFile, "TLS_KEY": tokenFile},
			[]string{"TLS_KEY"}, nil},
		{"AUTH_TOKEN and AUTH_TOKEN_FILE", map[string]string{"AUTH_TOKEN": "env-token", "AUTH_TOKEN_FILE": tokenFile},
			[]string{"AUTH_TOKEN", "AUTH_TOKEN_FILE"}, []string{"env-token", "file-token"}},
		{"AUTH_TOKEN with a space", map[string]string{"AUTH_TOKEN": spaced},
			[]string{"AUTH_TOKEN", "<redacted>", "visible ASCII"}, []string{spaced}},
		{"unreadable AUTH_TOKEN_FILE", map[string]string{"AUTH_TOKEN_FILE": missing},
			[]string{"AUTH_TOKEN_FILE", "missing.pem"}, nil},
		{"empty AUTH_TOKEN_FILE", map[string]string{"AUTH_TOKEN_FILE": emptyFile},
			[]string{"AUTH_TOKEN_FILE"}, nil},
		{"METRICS_PUBLIC=yes", map[string]string{"METRICS_PUBLIC": "yes"},
			[]string{"METRICS_PUBLIC", `"yes"`, "0 or 1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"ADDR": "127.0.0.1:0", "SINK": "null"} // if it started anyway
			for k, v := range tc.env {
				env[k] = v
			}
			p := startProcess(t, env)
			code, log := p.wait()
			if code != 2 {
				t.Errorf("exit code = %d; want 2", code)
			}
			stderr := strings.Join(log, "\n")
			wantContains(t, "stderr", stderr, tc.want...)
			for _, s := range tc.notWant {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr = %q; want it not to contain %q", stderr, s)
				}
			}
		})
	}
}
