//go:build e2e

package natssink

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
	"github.com/fastingest/fastingest/server"
)

// startCluster starts n JetStream servers clustered on 127.0.0.1 and waits
// until they have elected a meta leader and all are current.
func startCluster(t *testing.T, n int) []*natsserver.Server {
	t.Helper()
	// Routes must be known before the servers start, so the cluster
	// ports are picked first.
	ports := freePorts(t, n)
	routes := make([]*url.URL, n)
	for i, port := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	}
	servers := make([]*natsserver.Server, n)
	for i := range servers {
		servers[i] = startServer(t, &natsserver.Options{
			ServerName: fmt.Sprintf("node-%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster: natsserver.ClusterOpts{
				Name: "fastingest-test",
				Host: "127.0.0.1",
				Port: ports[i],
			},
			Routes: routes,
		})
	}
	waitFor(t, 30*time.Second, "the cluster to elect a meta leader with every peer current", func() bool {
		var leader *natsserver.Server
		for _, s := range servers {
			if s.JetStreamIsLeader() {
				leader = s
			}
		}
		if leader == nil || len(leader.JetStreamClusterPeers()) != n {
			return false
		}
		for _, s := range servers {
			if !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
	return servers
}

// streamLeader returns the server leading the stream's replicas, or nil.
func streamLeader(servers []*natsserver.Server, stream string) *natsserver.Server {
	for _, s := range servers {
		if s.Running() && s.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return s
		}
	}
	return nil
}

// loadResults collects what the HTTP clients learnt.
type loadResults struct {
	mu        sync.Mutex
	accepted  map[string]bool // parcel ids of requests answered 202
	uncertain map[string]bool // parcel ids of requests answered otherwise
	statuses  map[int]int     // requests per status; 0: transport error
	acks      atomic.Int64    // requests answered 202
}

func (r *loadResults) record(ids []string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses[status]++
	dst := r.uncertain
	if status == fasthttp.StatusAccepted {
		dst = r.accepted
		r.acks.Add(1)
	}
	for _, id := range ids {
		dst[id] = true
	}
}

// postLoad posts batches of parcels with unique ids to addr until stop is
// closed.
func postLoad(client *fasthttp.Client, addr string, worker int, stop <-chan struct{}, res *loadResults) {
	const perRequest = 5
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		ids, body := testutil.NumberedBatch(fmt.Sprintf("w%d-r%d", worker, n), perRequest)
		req.Reset()
		req.SetRequestURI("http://" + addr + "/")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
		status := 0
		if err := client.DoTimeout(req, resp, 15*time.Second); err == nil {
			status = resp.StatusCode()
		}
		res.record(ids, status)
		if status != fasthttp.StatusAccepted {
			// Like a client honouring Retry-After, only sooner.
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// The proof: with ACK=persisted against a 3-node JetStream cluster
// and a stream of 3 replicas, shutting down the stream's leader in the
// middle of the load loses no acknowledged parcel and stores none twice.
func TestClusterSurvivesStreamLeaderLoss(t *testing.T) {
	// Not parallel: a leader election under the load of other tests can
	// outlast the read-back below, which then finds no responders.
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	servers := startCluster(t, 3)
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	cfg := testConfig(strings.Join(urls, ","))
	cfg.Replicas = 3
	s := newSink(t, cfg)
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy() = %v; want nil", err)
	}

	d, err := ingest.New(ingest.Config{MaxQueue: 1024, MaxWorkers: 16, Sink: s})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	srv, err := server.New(server.Config{
		MaxBodyBytes: 1 << 20,
		Ack:          server.AckPersisted,
		AckTimeout:   10 * time.Second,
		SinkHealth:   s.Healthy,
	}, d)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	res := &loadResults{accepted: map[string]bool{}, uncertain: map[string]bool{}, statuses: map[int]int{}}
	client := &fasthttp.Client{ReadTimeout: 15 * time.Second, WriteTimeout: 5 * time.Second}
	stop := make(chan struct{})
	var clients sync.WaitGroup
	for w := range 4 {
		clients.Go(func() { postLoad(client, ln.Addr().String(), w, stop, res) })
	}
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		clients.Wait()
	})
	defer stopLoad() // on a failure, before the servers go

	waitFor(t, 20*time.Second, "20 requests acknowledged before the failover", func() bool { return res.acks.Load() >= 20 })
	leader := streamLeader(servers, DefaultStream)
	if leader == nil {
		t.Fatal("no stream leader")
	}
	// Which node the sink's connection picked is random: connected to
	// the leader, its pending publishes fail at once on the disconnect;
	// connected elsewhere, those the leader took with it time out after
	// AckWait. Either way they are published again.
	t.Logf("shutting down the stream leader %s (the sink is connected to %s) after %d acknowledged requests",
		leader.Name(), s.nc.ConnectedServerName(), res.acks.Load())
	stopServer(leader)
	ackedBefore := res.acks.Load()

	waitFor(t, 30*time.Second, "a new stream leader", func() bool { return streamLeader(servers, DefaultStream) != nil })
	waitFor(t, 30*time.Second, "20 requests acknowledged after the failover", func() bool { return res.acks.Load() >= ackedBefore+20 })
	stopLoad()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("server Shutdown() error = %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve() error = %v", err)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Errorf("Dispatcher.Shutdown() error = %v", err)
	}
	st := d.Stats()
	t.Logf("requests by status: %v; dispatcher: %+v; sink: %+v", res.statuses, st, s.Stats())
	if st.Failed != 0 || st.Completed != st.Accepted {
		t.Errorf("Stats() = %+v; want every accepted parcel completed", st)
	}

	var alive []string
	for _, srv := range servers {
		if srv.Running() {
			alive = append(alive, srv.ClientURL())
		}
	}
	msgs := readStream(t, strings.Join(alive, ","), DefaultStream)
	seen := make(map[string]uint64, len(msgs))
	for _, m := range msgs {
		if seq, dup := seen[m.id]; dup {
			t.Errorf("parcel %s stored twice: messages %d and %d", m.id, seq, m.seq)
		}
		seen[m.id] = m.seq
		if !res.accepted[m.id] && !res.uncertain[m.id] {
			t.Errorf("message %d holds parcel %s, which no client sent", m.seq, m.id)
		}
	}
	missing := 0
	for id := range res.accepted {
		if _, ok := seen[id]; !ok {
			missing++
			if missing <= 10 {
				t.Errorf("parcel %s was acknowledged (202) but is not in the stream", id)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d acknowledged parcels missing from the stream", missing)
	}
	t.Logf("%d acknowledged parcels, %d uncertain, %d messages in the stream", len(res.accepted), len(res.uncertain), len(msgs))
}
