package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// With SINK=kafka, loadSecrets reads the SASL password and the CA file;
// an unreadable or unusable file is a configuration error (exit 2) naming
// the setting and the path, never the password; the startup line names
// the mechanism and user, never the password.
func TestKafkaSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	password := write("password", "open-sesame\n")
	ca := write("ca.pem", testCAPEM)
	sasl := map[string]string{"SINK": "kafka", "KAFKA_SASL_MECHANISM": "plain", "KAFKA_SASL_USER": "fastingest",
		"KAFKA_SASL_PASSWORD_FILE": password, "KAFKA_TLS": "1", "KAFKA_TLS_CA": ca}

	c := mustLoad(t, nil, sasl)
	if _, err := c.loadSecrets(); err != nil {
		t.Fatalf("loadSecrets() = %v; want nil", err)
	}
	if c.KafkaSASLPassword != "open-sesame" || c.KafkaTLSCAPEM != testCAPEM || c.KafkaSASLMechanism != "PLAIN" {
		t.Errorf("loaded password %q, CA %d bytes, mechanism %q; want open-sesame, the file, PLAIN",
			c.KafkaSASLPassword, len(c.KafkaTLSCAPEM), c.KafkaSASLMechanism)
	}
	line := fmt.Sprintln(c.logAttrs()...)
	wantContains(t, "startup attributes", line, "kafka_sasl_mechanism PLAIN", "kafka_sasl_user fastingest", "kafka_tls true", ca)
	if strings.Contains(line, "open-sesame") {
		t.Errorf("startup attributes %s show the password", line)
	}

	// Another sink reads none of the files.
	other := mustLoad(t, nil, map[string]string{"SINK": "null", "KAFKA_SASL_MECHANISM": "PLAIN",
		"KAFKA_SASL_USER": "u", "KAFKA_SASL_PASSWORD_FILE": filepath.Join(dir, "missing")})
	if _, err := other.loadSecrets(); err != nil || other.KafkaSASLPassword != "" {
		t.Errorf("loadSecrets() with SINK=null = %v, password %q; want nil and nothing read", err, other.KafkaSASLPassword)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"password file missing", map[string]string{"KAFKA_SASL_PASSWORD_FILE": filepath.Join(dir, "missing")},
			[]string{"invalid KAFKA_SASL_PASSWORD_FILE", "missing", "no such file"}},
		{"empty password", map[string]string{"KAFKA_SASL_PASSWORD_FILE": write("empty", "\n")},
			[]string{"invalid KAFKA_SASL_PASSWORD_FILE", "the password: empty"}},
		{"password of two lines", map[string]string{"KAFKA_SASL_PASSWORD_FILE": write("two", "open\nsesame\n")},
			[]string{"invalid KAFKA_SASL_PASSWORD_FILE", "a control character"}},
		{"CA file that is no PEM", map[string]string{"KAFKA_TLS_CA": password},
			[]string{"invalid KAFKA_TLS_CA", "no PEM certificate", "PEM certificates"}},
		{"CA file missing", map[string]string{"KAFKA_TLS_CA": filepath.Join(dir, "nope.pem")},
			[]string{"invalid KAFKA_TLS_CA", "nope.pem", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range sasl {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			c := mustLoad(t, nil, env)
			_, err := c.loadSecrets()
			if err == nil {
				t.Fatal("loadSecrets() = nil; want an error")
			}
			wantContains(t, "loadSecrets() error", err.Error(), tc.want...)
			for _, secret := range []string{"open-sesame", "sesame"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("loadSecrets() error %q shows the password", err)
				}
			}
		})
	}
}

// testCAPEM is a self-signed certificate, for a file that parses as PEM.
const testCAPEM = `-----BEGIN CERTIFICATE-----
MIIBbDCCARGgAwIBAgIBATAKBggqhkjOPQQDAjAdMRswGQYDVQQDExJmYXN0aW5n
ZXN0IHRlc3QgQ0EwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAdMRsw
GQYDVQQDExJmYXN0aW5nZXN0IHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMB
BwNCAATAmxrBtmiZR9YT4Xx1RFS75rirqh/D4DsxW3r5wjASbueVq4DvcL9qIXd8
+ktZZ3fgpbnlKvx9mQWGAlICcqh9o0IwQDAOBgNVHQ8BAf8EBAMCAgQwDwYDVR0T
AQH/BAUwAwEB/zAdBgNVHQ4EFgQUpdc+yfrQwxcLv4NqYpoXTMciKUAwCgYIKoZI
zj0EAwIDSQAwRgIhAMukHapw0wcb1WKaSV9ybY3Jrl3kR5DNlodj3ybyClXsAiEA
1W9R88cA6hPp7XRj68D6OzCXQRA4kiZPlJTKobixcfY=
-----END CERTIFICATE-----
`
