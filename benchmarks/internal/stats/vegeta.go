package stats

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// VegetaReport is the part of `vegeta report -type=json` the harness reads.
type VegetaReport struct {
	Requests    int64            `json:"requests"`
	Rate        float64          `json:"rate"`       // requests sent per second
	Throughput  float64          `json:"throughput"` // successful requests per second
	Success     float64          `json:"success"`    // share of successful requests, 0 to 1
	StatusCodes map[string]int64 `json:"status_codes"`
	Errors      []string         `json:"errors"`
}

// ParseVegetaReport reads `vegeta report -type=json`.
func ParseVegetaReport(data []byte) (VegetaReport, error) {
	var r VegetaReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("cannot read vegeta's JSON report: %w", err)
	}
	if r.StatusCodes == nil {
		return r, errors.New("vegeta's JSON report has no status_codes: not a report")
	}
	return r, nil
}

// VegetaLatencies reads `vegeta encode -to csv` (one result per line:
// timestamp, status code, latency in ns, ...) and returns every latency in
// milliseconds, in ascending order. vegeta's own report estimates its
// percentiles and has no p99.9; these are exact.
func VegetaLatencies(r io.Reader) ([]float64, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // an error column may be empty or quoted
	cr.ReuseRecord = true
	var ms []float64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("vegeta's CSV results: %w", err)
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("vegeta's CSV results: a line has %d fields, want at least 3", len(rec))
		}
		ns, err := strconv.ParseInt(rec[2], 10, 64)
		if err != nil || ns < 0 {
			return nil, fmt.Errorf("vegeta's CSV results: latency %q is not a count of nanoseconds", rec[2])
		}
		ms = append(ms, float64(ns)/1e6)
	}
	slices.Sort(ms)
	return ms, nil
}
