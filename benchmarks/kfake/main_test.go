package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseOptions(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.brokers != 1 || o.ports != nil || o.topic != "fastingest.parcels" || o.partitions != 3 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseOptions([]string{"-brokers", "3", "-ports", "9092, 9093,9094", "-topic", "t_1", "-partitions", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.brokers != 3 || !slices.Equal(o.ports, []int{9092, 9093, 9094}) || o.topic != "t_1" || o.partitions != 1 {
		t.Errorf("got %+v", o)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-brokers", "2"}, "-brokers wants 1 or 3, not 2"},
		{[]string{"-ports", "9092,9093"}, "-ports names 2 port(s) for 1 broker(s)"},
		{[]string{"-ports", "x"}, `-ports wants port numbers 1 to 65535, not "x"`},
		{[]string{"-ports", "70000"}, "-ports wants port numbers"},
		{[]string{"-partitions", "0"}, "-partitions wants 1 to 1000, not 0"},
		{[]string{"-topic", "a b"}, "-topic wants a Kafka topic name"},
		{[]string{"-topic", ""}, "-topic wants a Kafka topic name"},
		{[]string{"extra"}, "unknown argument: extra"},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		if _, err := parseOptions(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseOptions(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseOptions([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseOptions(-h) = %v, want flag.ErrHelp", err)
	}
}

// TestCluster starts the cluster the options ask for and checks that it
// has the brokers and the topic.
func TestCluster(t *testing.T) {
	o, err := parseOptions([]string{"-brokers", "3", "-topic", "bench", "-partitions", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(clusterOpts(o)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := len(c.ListenAddrs()); n != 3 {
		t.Fatalf("%d brokers, want 3", n)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(context.Background(), "bench")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td["bench"].Partitions); td["bench"].Err != nil || got != 2 {
		t.Errorf("topic bench: %d partitions (%v), want 2", got, td["bench"].Err)
	}
}
