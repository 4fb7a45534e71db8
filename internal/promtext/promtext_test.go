package promtext

import (
	"bytes"
	"testing"
)

func TestFamilies(t *testing.T) {
	var b bytes.Buffer
	Counter(&b, "a_total", "Things.", 3)
	Gauge(&b, "b", "Level.", 7)
	GaugeFloat(&b, "c_seconds", "Age.", 1.5)
	want := "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n" +
		"# HELP b Level.\n# TYPE b gauge\nb 7\n" +
		"# HELP c_seconds Age.\n# TYPE c_seconds gauge\nc_seconds 1.5\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
