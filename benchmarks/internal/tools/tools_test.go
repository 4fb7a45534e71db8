package tools

import "testing"

func TestGoBinFrom(t *testing.T) {
	for _, tc := range []struct {
		env, want string
		wantErr   bool
	}{
		{"/opt/gobin\n/root/go\n", "/opt/gobin", false},
		{"\n/root/go\n", "/root/go/bin", false},
		{"\n/a/go:/b/go\n", "/a/go/bin", false},
		{"\n\n", "", true},
		{"", "", true},
	} {
		got, err := goBinFrom(tc.env)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("goBinFrom(%q) = %q, %v; want %q, error %v", tc.env, got, err, tc.want, tc.wantErr)
		}
	}
}
