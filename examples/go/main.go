// Command go is a fastingest producer in Go with net/http and the standard
// library alone: it POSTs a batch of parcels, waits and tries again on 503
// as Retry-After says, and sends each half of a batch on its own when the
// server answers 413 (the body is over MAX_BODY_BYTES).
//
// FASTINGEST_URL says where (default http://127.0.0.1:8080/),
// FASTINGEST_TOKEN as whom (optional). It exits 1 when a batch is not
// accepted.
//
//	FASTINGEST_URL=http://127.0.0.1:8080/ go run ./examples/go
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

const (
	attempts = 8                // tries of one batch on 408, 429, 503 or a network error
	maxWait  = 30 * time.Second // the longest wait for one Retry-After
)

// parcel is one record as fastingest takes it.
type parcel struct {
	ID   string `json:"id"`
	Time string `json:"time"` // RFC 3339
	Data string `json:"data,omitempty"`
}

// producer sends batches to one fastingest.
type producer struct {
	client *http.Client
	url    string
	token  string
}

func main() {
	p := &producer{
		client: &http.Client{Timeout: 60 * time.Second},
		url:    os.Getenv("FASTINGEST_URL"),
		token:  os.Getenv("FASTINGEST_TOKEN"),
	}
	if p.url == "" {
		p.url = "http://127.0.0.1:8080/"
	}
	now := time.Now().UTC().Format(time.RFC3339)
	batch := make([]parcel, 200)
	for i := range batch {
		n := strconv.Itoa(i + 1)
		batch[i] = parcel{ID: "go-" + n, Time: now, Data: "reading " + n}
	}
	accepted, err := p.send(batch)
	if err != nil {
		fmt.Fprintln(os.Stderr, "not accepted:", err)
		os.Exit(1)
	}
	fmt.Printf("accepted %d of %d parcels\n", accepted, len(batch))
}

// send POSTs parcels as one batch and returns how many were accepted. A
// refused batch queued nothing, so sending it again stores nothing twice;
// only a retry after a network error, or after a 503 with ACK=persisted, may:
// readers that must not see duplicates drop them by id.
func (p *producer) send(parcels []parcel) (int, error) {
	body, err := json.Marshal(struct{ Data []parcel }{parcels})
	if err != nil {
		return 0, err
	}
	for attempt := 1; ; attempt++ {
		status, header, answer, err := p.post(body)
		switch {
		case err != nil && attempt < attempts:
			time.Sleep(time.Duration(attempt) * time.Second)
		case err != nil:
			return 0, err
		case status == http.StatusAccepted:
			var a struct{ Accepted int }
			err := json.Unmarshal(answer, &a)
			return a.Accepted, err
		case status == http.StatusRequestEntityTooLarge && len(parcels) > 1:
			fmt.Fprintf(os.Stderr, "413: splitting %d parcels in two\n", len(parcels))
			half := len(parcels) / 2
			first, err := p.send(parcels[:half])
			if err != nil {
				return first, err
			}
			second, err := p.send(parcels[half:])
			return first + second, err
		case (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests ||
			status == http.StatusRequestTimeout) && attempt < attempts:
			time.Sleep(retryAfter(header.Get("Retry-After")))
		default:
			return 0, fmt.Errorf("%d %s", status, bytes.TrimSpace(answer))
		}
	}
}

// post sends one request and reads its whole answer, so that the
// connection is reused.
func (p *producer) post(body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, answer, err
}

// retryAfter returns the wait a Retry-After value asks for, in seconds or as
// an HTTP date, at most maxWait; 1 s when it is missing or unreadable.
func retryAfter(v string) time.Duration {
	wait := time.Second
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		wait = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		wait = max(time.Until(t), 0)
	}
	return min(wait, maxWait)
}
