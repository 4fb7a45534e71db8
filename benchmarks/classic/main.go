// Command classic is the baseline for scripts/bench.sh: the design published
// in "Handling 1 Million Requests per Minute with Go" (Marcio Castilho, 2015),
// kept as it was, because it is what users would otherwise deploy. net/http
// serves POST /, encoding/json decodes the whole body (at most MaxLength
// bytes) into a PayloadCollection, and every payload becomes a Job on the
// global JobQueue; a Dispatcher hands jobs to a pool of Workers.
//
// It is deliberately unoptimized. In particular the dispatch loop starts one
// goroutine per job to wait for a free worker, exactly as published: that is
// the point of the comparison (it empties JobQueue at once, so the queue never
// gives backpressure and pending work piles up as goroutines). Workers do
// nothing with a job, so that the benchmark compares the ingest path, not a
// simulated store. Do not improve this file: it is a measuring stick.
//
// Environment: ADDR (default :8080), MAX_WORKERS (default 1000), MAX_QUEUE
// (default 10000). It prints "listening on HOST:PORT" (the actual address, so
// ADDR=127.0.0.1:0 works) to stderr, and exits 0 on SIGINT or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// MaxLength is the largest body the handler reads (1 MiB), as in the article.
const MaxLength = 1 << 20

// PayloadCollection is the request body.
type PayloadCollection struct {
	Data []Payload `json:"Data"`
}

// Payload is one record of a request.
type Payload struct {
	ID   string `json:"id"`
	Time string `json:"time"`
	Data string `json:"data"`
}

// Job represents the job to be run.
type Job struct {
	Payload Payload
}

// JobQueue is a buffered channel that we can send work requests on.
var JobQueue chan Job

// Worker represents the worker that executes the job.
type Worker struct {
	WorkerPool chan chan Job
	JobChannel chan Job
	quit       chan bool
}

// NewWorker returns a worker that registers itself in workerPool.
func NewWorker(workerPool chan chan Job) Worker {
	return Worker{
		WorkerPool: workerPool,
		JobChannel: make(chan Job),
		quit:       make(chan bool)}
}

// Start starts the run loop for the worker, listening for a quit channel in
// case we need to stop it.
func (w Worker) Start() {
	go func() {
		for {
			// register the current worker into the worker queue.
			w.WorkerPool <- w.JobChannel

			select {
			case job := <-w.JobChannel:
				// we have received a work request. The article uploads the
				// payload to S3 here; the benchmark compares the ingest path,
				// so the job is dropped.
				_ = job
			case <-w.quit:
				// we have received a signal to stop
				return
			}
		}
	}()
}

// Stop signals the worker to stop listening for work requests.
func (w Worker) Stop() {
	go func() {
		w.quit <- true
	}()
}

// Dispatcher hands jobs from JobQueue to workers.
type Dispatcher struct {
	// A pool of workers channels that are registered with the dispatcher
	WorkerPool chan chan Job
	maxWorkers int
}

// NewDispatcher returns a dispatcher for maxWorkers workers.
func NewDispatcher(maxWorkers int) *Dispatcher {
	pool := make(chan chan Job, maxWorkers)
	return &Dispatcher{WorkerPool: pool, maxWorkers: maxWorkers}
}

// Run starts the workers and the dispatch loop.
func (d *Dispatcher) Run() {
	// starting n number of workers
	for i := 0; i < d.maxWorkers; i++ {
		worker := NewWorker(d.WorkerPool)
		worker.Start()
	}

	go d.dispatch()
}

func (d *Dispatcher) dispatch() {
	for {
		select {
		case job := <-JobQueue:
			// a job request has been received
			go func(job Job) {
				// try to obtain a worker job channel that is available.
				// this will block until a worker is idle
				jobChannel := <-d.WorkerPool

				// dispatch the job to the worker job channel
				jobChannel <- job
			}(job)
		}
	}
}

func payloadHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}

	// Read the body into a string for json decoding
	var content = &PayloadCollection{}
	err := json.NewDecoder(io.LimitReader(r.Body, MaxLength)).Decode(&content)
	if err != nil {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusBadRequest)
		return
	}

	// Go through each payload and queue items individually
	for _, payload := range content.Data {
		// let's create a job with the payload
		work := Job{Payload: payload}

		// Push the work onto the queue.
		JobQueue <- work
	}

	w.WriteHeader(http.StatusOK)
}

func main() {
	maxWorkers := envInt("MAX_WORKERS", 1000)
	maxQueue := envInt("MAX_QUEUE", 10000)
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}

	JobQueue = make(chan Job, maxQueue)
	dispatcher := NewDispatcher(maxWorkers)
	dispatcher.Run()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "classic:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", payloadHandler)
	srv := &http.Server{Handler: mux}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr().String())

	select {
	case <-signals:
	case err := <-serveErr:
		fmt.Fprintln(os.Stderr, "classic:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "classic: shutdown:", err)
	}
}

// envInt reads a positive integer from the environment, or returns def when
// the variable is unset or empty. Anything else stops the program.
func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "classic: invalid %s %q: want a positive integer\n", name, v)
		os.Exit(2)
	}
	return n
}
