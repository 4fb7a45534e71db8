package server

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/fastingest/fastingest/internal/testutil"
	"github.com/valyala/fasthttp"
)

// testToken is the AuthToken of the tests: visible ASCII, as config allows.
const testToken = "s3cret-T0ken_with.symbols~"

const (
	challengeNoToken  = `Bearer realm="fastingest"`
	challengeBadToken = `Bearer realm="fastingest", error="invalid_token"`
)

// TestAuthIngest: with AuthToken set, POST / takes parcels only with the
// right bearer token (the scheme in any case, spaces around the token), and
// answers 401 with a WWW-Authenticate challenge otherwise, queueing nothing
// and echoing no token. Whether the comparison is constant-time cannot be
// told by timing in a test; auth.go uses subtle.ConstantTimeCompare.
func TestAuthIngest(t *testing.T) {
	t.Parallel()
	env := startTunedEnv(t, tunedOptions{server: Config{AuthToken: testToken}})

	tests := []struct {
		name      string
		auth      []string // Authorization header values; none: no header
		status    int
		challenge string // the WWW-Authenticate header wanted with 401
	}{
		{name: "no Authorization", status: 401, challenge: challengeNoToken},
		{name: "empty Authorization", auth: []string{""}, status: 401, challenge: challengeNoToken},
		{name: "Bearer without token", auth: []string{"Bearer"}, status: 401, challenge: challengeNoToken},
		{name: "Bearer and a space", auth: []string{"Bearer "}, status: 401, challenge: challengeNoToken},
		{name: "token without scheme", auth: []string{testToken}, status: 401, challenge: challengeNoToken},
		{name: "Basic scheme", auth: []string{"Basic dXNlcjpzM2NyZXQ="}, status: 401, challenge: challengeNoToken},
		{name: "Basic scheme with the token", auth: []string{"Basic " + testToken}, status: 401, challenge: challengeNoToken},
		{name: "scheme prefix of Bearer", auth: []string{"Bear " + testToken}, status: 401, challenge: challengeNoToken},
		{name: "wrong token", auth: []string{"Bearer wrong"}, status: 401, challenge: challengeBadToken},
		{name: "token prefix", auth: []string{"Bearer " + testToken[:len(testToken)-1]}, status: 401, challenge: challengeBadToken},
		{name: "token and more", auth: []string{"Bearer " + testToken + "x"}, status: 401, challenge: challengeBadToken},
		{name: "token in another case", auth: []string{"Bearer " + strings.ToUpper(testToken)}, status: 401, challenge: challengeBadToken},
		{name: "token twice", auth: []string{"Bearer " + testToken + " " + testToken}, status: 401, challenge: challengeBadToken},
		{name: "Bearer token", auth: []string{"Bearer " + testToken}, status: 202},
		{name: "lower-case scheme", auth: []string{"bearer " + testToken}, status: 202},
		{name: "upper-case scheme", auth: []string{"BEARER " + testToken}, status: 202},
		{name: "mixed-case scheme", auth: []string{"bEaReR " + testToken}, status: 202},
		{name: "extra spaces", auth: []string{"  Bearer    " + testToken + "   "}, status: 202},
		// The first Authorization header is the one read.
		{name: "right token first of two headers", auth: []string{"Bearer " + testToken, "Bearer wrong"}, status: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.disp.Stats().Accepted
			req := request{ctype: "application/json", body: refBody}
			for _, v := range tt.auth {
				req.headers = append(req.headers, [2]string{fasthttp.HeaderAuthorization, v})
			}
			resp := env.do(t, req)
			if tt.status == fasthttp.StatusAccepted {
				checkAccepted(t, resp, `{"accepted":9}`)
				checkHeader(t, resp, fasthttp.HeaderWWWAuthenticate, "")
				return
			}
			checkError(t, resp, tt.status, "token")
			checkHeader(t, resp, fasthttp.HeaderWWWAuthenticate, tt.challenge)
			checkHeader(t, resp, fasthttp.HeaderRetryAfter, "")
			if strings.Contains(string(resp.Body()), testToken[:8]) {
				t.Errorf("401 body %q repeats the token", resp.Body())
			}
			if got := env.disp.Stats().Accepted; got != before {
				t.Errorf("dispatcher accepted %d parcels on 401; want none", got-before)
			}
		})
	}

	// 401 comes before the method and content checks: nothing about the
	// endpoint is told without the token.
	resp := env.do(t, request{method: fasthttp.MethodGet})
	checkError(t, resp, fasthttp.StatusUnauthorized, "Bearer")
	checkHeader(t, resp, fasthttp.HeaderAllow, "")

	s := env.scrape(t, [2]string{fasthttp.HeaderAuthorization, "Bearer " + testToken})
	var want401, want202 float64
	for _, tt := range tests {
		if tt.status == fasthttp.StatusAccepted {
			want202++
		} else {
			want401++
		}
	}
	if got := s.requests(t, "/", "401"); got != want401+1 {
		t.Errorf("requests_total{path=\"/\",status=\"401\"}: got %v, want %v", got, want401+1)
	}
	if got := s.requests(t, "/", "202"); got != want202 {
		t.Errorf("requests_total{path=\"/\",status=\"202\"}: got %v, want %v", got, want202)
	}
	for _, reason := range shedLabels {
		if got := s.get(t, `fastingest_requests_shed_total{reason="`+reason+`"}`); got != 0 {
			t.Errorf("shed %s: got %v, want 0: a 401 is not load shedding", reason, got)
		}
	}
	if got := s.get(t, mAccepted); got != 9*want202 {
		t.Errorf("parcels accepted: got %v, want %v", got, 9*want202)
	}
}

// TestAuthOtherEndpoints: the health endpoints never need the token;
// /metrics needs it unless MetricsPublic; without AuthToken nothing does.
func TestAuthOtherEndpoints(t *testing.T) {
	t.Parallel()
	bearer := [2]string{fasthttp.HeaderAuthorization, "Bearer " + testToken}
	wrong := [2]string{fasthttp.HeaderAuthorization, "Bearer wrong"}
	type check struct {
		method, path string
		headers      [][2]string
		status       int
		challenge    string
	}
	tests := []struct {
		name   string
		cfg    Config
		checks []check
	}{
		{name: "AuthToken", cfg: Config{AuthToken: testToken}, checks: []check{
			{method: "GET", path: "/healthz", status: 200},
			{method: "GET", path: "/readyz", status: 200},
			{method: "HEAD", path: "/readyz", status: 200},
			{method: "GET", path: "/healthz", headers: [][2]string{wrong}, status: 200},
			{method: "GET", path: "/metrics", status: 401, challenge: challengeNoToken},
			{method: "GET", path: "/metrics", headers: [][2]string{wrong}, status: 401, challenge: challengeBadToken},
			{method: "GET", path: "/metrics", headers: [][2]string{{fasthttp.HeaderAuthorization, "Basic eDp5"}}, status: 401, challenge: challengeNoToken},
			{method: "GET", path: "/metrics", headers: [][2]string{bearer}, status: 200},
			{method: "GET", path: "/nope", status: 404},
		}},
		{name: "AuthToken and MetricsPublic", cfg: Config{AuthToken: testToken, MetricsPublic: true}, checks: []check{
			{method: "GET", path: "/metrics", status: 200},
			{method: "GET", path: "/metrics", headers: [][2]string{wrong}, status: 200},
			{method: "GET", path: "/metrics", headers: [][2]string{bearer}, status: 200},
			{method: "POST", path: "/", status: 401, challenge: challengeNoToken},
			{method: "GET", path: "/healthz", status: 200},
		}},
		{name: "no AuthToken", cfg: Config{}, checks: []check{
			{method: "POST", path: "/", status: 202},
			{method: "POST", path: "/", headers: [][2]string{wrong}, status: 202},
			{method: "POST", path: "/", headers: [][2]string{{fasthttp.HeaderAuthorization, "Basic eDp5"}}, status: 202},
			{method: "GET", path: "/metrics", status: 200},
			{method: "GET", path: "/metrics", headers: [][2]string{wrong}, status: 200},
			{method: "GET", path: "/readyz", status: 200},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startTunedEnv(t, tunedOptions{server: tt.cfg})
			for _, c := range tt.checks {
				req := request{method: c.method, path: c.path, headers: c.headers}
				if c.method == fasthttp.MethodPost {
					req.ctype, req.body = "application/json", refBody
				}
				resp := env.do(t, req)
				if got := resp.StatusCode(); got != c.status {
					t.Errorf("%s %s %v: got %d %q, want %d", c.method, c.path, c.headers, got, resp.Body(), c.status)
				}
				if got := string(resp.Header.Peek(fasthttp.HeaderWWWAuthenticate)); got != c.challenge {
					t.Errorf("%s %s %v: WWW-Authenticate %q, want %q", c.method, c.path, c.headers, got, c.challenge)
				}
				if c.status == fasthttp.StatusOK && c.path == "/metrics" {
					if _, err := parseMetrics(resp.Body()); err != nil {
						t.Errorf("GET /metrics: %v", err)
					}
				}
			}
		})
	}
}

// A request fasthttp cannot parse must not carry its Authorization header
// into the 400 it gets or into the log: fasthttp quotes the raw request in
// its parse errors unless told not to.
func TestUnparsableRequestDoesNotLeakToken(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-token-value"
	var logs testutil.SyncBuffer
	env := startTunedEnv(t, tunedOptions{server: Config{
		AuthToken: token, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}})
	resp := env.doRaw(t, request{method: "POST", path: "/", body: refBody, headers: [][2]string{
		{"Authorization", "Bearer " + token},
		{"X-Broken", "value\r\nnot a header line"},
	}})
	checkStatus(t, resp, fasthttp.StatusBadRequest)
	if strings.Contains(string(resp.Body()), token) {
		t.Errorf("400 body %q quotes the token", resp.Body())
	}
	env.stop(t)
	if strings.Contains(logs.String(), token) {
		t.Errorf("log quotes the token:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "rejected request") {
		t.Errorf("log has no line for the rejected request:\n%s", logs.String())
	}
}
