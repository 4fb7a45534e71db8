// Command kfake runs franz-go's fake Kafka cluster (pkg/kfake) as a process
// of its own: the broker of the benchmark harness's kafka runs, which
// measures its CPU apart from fastingest's, as it does nats-server's. It
// serves from memory only, on 127.0.0.1, until SIGTERM or SIGINT.
//
// Usage:
//
//	kfake [-brokers 1|3] [-ports P1,P2,P3] [-topic NAME] [-partitions N]
//
// Once the cluster listens and its topic exists it prints one line,
//
//	kfake: listening on 127.0.0.1:P1,127.0.0.1:P2 (2 brokers); topic NAME, N partitions
//
// the brokers as KAFKA_BROKERS takes them. A wrong flag exits 2.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// options is what the command line asks for.
type options struct {
	brokers    int
	ports      []int // one per broker; nil: free ports
	topic      string
	partitions int32
}

// parseOptions reads the command line. Only 1 or 3 brokers: one for the
// benchmark's runs, three for a cluster whose leaders can move.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.brokers, "brokers", 1, "brokers in the cluster: 1 or 3")
	ports := fs.String("ports", "", "comma-separated ports of 127.0.0.1, one per broker (default: free ports)")
	fs.StringVar(&o.topic, "topic", "fastingest.parcels", "topic created at startup")
	partitions := fs.Int("partitions", 3, "partitions of the topic")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unknown argument: %s", fs.Arg(0))
	}
	if o.brokers != 1 && o.brokers != 3 {
		return o, fmt.Errorf("-brokers wants 1 or 3, not %d", o.brokers)
	}
	if *partitions < 1 || *partitions > 1000 {
		return o, fmt.Errorf("-partitions wants 1 to 1000, not %d", *partitions)
	}
	o.partitions = int32(*partitions)
	if o.topic == "" || strings.ContainsFunc(o.topic, func(r rune) bool {
		return !(r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) || len(o.topic) > 249 {
		return o, fmt.Errorf("-topic wants a Kafka topic name (letters, digits, '.', '_', '-'; at most 249), not %q", o.topic)
	}
	if *ports != "" {
		for _, s := range strings.Split(*ports, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || p < 1 || p > 65535 {
				return o, fmt.Errorf("-ports wants port numbers 1 to 65535, not %q", s)
			}
			o.ports = append(o.ports, p)
		}
		if len(o.ports) != o.brokers {
			return o, fmt.Errorf("-ports names %d port(s) for %d broker(s)", len(o.ports), o.brokers)
		}
	}
	return o, nil
}

// clusterOpts are kfake's options for o.
func clusterOpts(o options) []kfake.Opt {
	opts := []kfake.Opt{kfake.NumBrokers(o.brokers), kfake.SeedTopics(o.partitions, o.topic)}
	if o.ports != nil { // else free ports, kfake's default
		opts = append(opts, kfake.Ports(o.ports...))
	}
	return opts
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfake: %v\n", err)
		os.Exit(2)
	}
	c, err := kfake.NewCluster(clusterOpts(o)...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kfake: cannot start the cluster: %v\n", err)
		os.Exit(1)
	}
	// Only now: the line tells the harness the brokers are ready.
	fmt.Printf("kfake: listening on %s (%d brokers); topic %s, %d partitions\n",
		strings.Join(c.ListenAddrs(), ","), o.brokers, o.topic, o.partitions)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	<-sigs
	c.Close()
}
