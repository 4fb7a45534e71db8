package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaServer is benchmarks/kfake, franz-go's fake Kafka cluster, started
// for the sink section's kafka runs.
type kafkaServer struct {
	*proc
	brokers string // as KAFKA_BROKERS takes them
}

// kafkaPartitions is the partition count of a kafka run's topic: records
// keyed by parcel id spread over several batches, as on a real topic.
const kafkaPartitions = 3

var kfakeListening = regexp.MustCompile(`kfake: listening on (\S+) `)

// startKfake starts the kfake command built into the work directory: one
// broker on free ports of 127.0.0.1, pinned on the load generator's CPU
// (it competes with the load, not with fastingest, as moto does), and
// waits for the line it prints once its brokers listen.
func (b *bench) startKfake() (*kafkaServer, error) {
	logPath := filepath.Join(b.work, "kfake.log")
	argv := append(slices.Clone(b.pin.load), filepath.Join(b.work, "kfake"), "-brokers", "1")
	p, err := startProc(&b.procs, "kfake", argv, serverEnv(os.Environ(), nil), logPath)
	if err != nil {
		return nil, err
	}
	k := &kafkaServer{proc: p}
	poll(10*time.Second, 50*time.Millisecond, func() bool {
		k.brokers = kfakeBrokers(logPath)
		return k.brokers != "" || !p.alive()
	})
	if k.brokers != "" && p.alive() {
		return k, nil
	}
	log, _ := os.ReadFile(logPath)
	b.stopKfake(k)
	if !p.alive() {
		return nil, fmt.Errorf("kfake exited at startup: %s", strings.ReplaceAll(tail(log, 2), "\n", " "))
	}
	return nil, fmt.Errorf("kfake did not say it listens within 10 s")
}

// kfakeBrokers returns the brokers kfake's log names, "" before it does.
func kfakeBrokers(logPath string) string {
	log, err := os.ReadFile(logPath)
	if err != nil {
		return ""
	}
	if m := kfakeListening.FindSubmatch(log); m != nil {
		return string(m[1])
	}
	return ""
}

// stopKfake stops kfake and keeps its log.
func (b *bench) stopKfake(k *kafkaServer) {
	k.stop(10 * time.Second)
	b.procs.forget(k.proc)
	log, _ := os.ReadFile(k.log)
	b.rawLog(fmt.Sprintf("kfake log (exit status %d)", k.status()), log)
}

// kafkaAdmin runs fn with an admin client of kfake, closed after it: as for
// nats-server, nothing of the harness stays connected while fastingest is
// measured.
func kafkaAdmin(k *kafkaServer, fn func(ctx context.Context, adm *kadm.Client) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(k.brokers, ",")...), kgo.ClientID("fastingest-bench"))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fn(ctx, kadm.NewClient(cl))
}

// kafkaTopic is a kafka run's topic: a fresh one per run, as for nats.
func kafkaTopic(run string, round int) string {
	return fmt.Sprintf("bench.%s.%d", run, round)
}

// kafkaTopicConfig bounds a run's topic to retainMiB, spread over its
// partitions (retention.bytes is per partition): kfake holds every record
// in memory, so a long run must not take the machine's.
func kafkaTopicConfig(retainMiB int) map[string]*string {
	perPartition := strconv.FormatInt(int64(retainMiB)<<20/kafkaPartitions, 10)
	return map[string]*string{"retention.bytes": &perPartition}
}

// createKafkaTopic creates a run's topic, bounded by SINK_RETAIN_MIB.
func (b *bench) createKafkaTopic(k *kafkaServer, topic string) error {
	return kafkaAdmin(k, func(ctx context.Context, adm *kadm.Client) error {
		resp, err := adm.CreateTopic(ctx, kafkaPartitions, 1, kafkaTopicConfig(b.cfg.sinkRetainMiB), topic)
		if err != nil {
			return err
		}
		return resp.Err
	})
}

// kafkaStored returns what a run's topic received: the records produced
// (the sum of its partitions' end offsets, as a stream's last sequence) and
// their bytes, scaled up for the records retention.bytes dropped.
func kafkaStored(k *kafkaServer, topic string) (records int64, mib float64, err error) {
	err = kafkaAdmin(k, func(ctx context.Context, adm *kadm.Client) error {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		if err := ends.Error(); err != nil {
			return err
		}
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		var held int64
		ends.Each(func(lo kadm.ListedOffset) {
			records += lo.Offset
			held += lo.Offset
			if s, ok := starts.Lookup(lo.Topic, lo.Partition); ok && s.Err == nil && s.Offset > 0 {
				held -= s.Offset
			}
		})
		parts := map[int32]struct{}{}
		for p := range int32(kafkaPartitions) {
			parts[p] = struct{}{}
		}
		dirs, err := adm.DescribeAllLogDirs(ctx, kadm.TopicsSet{topic: parts})
		if err != nil {
			return err
		}
		var bytes int64
		dirs.Each(func(d kadm.DescribedLogDir) { bytes += d.Size() })
		mib = storedMiB(bytes, held, records)
		return nil
	})
	return records, mib, err
}

// storedMiB scales the bytes a topic holds for held records up to all the
// records it received, in MiB.
func storedMiB(bytes, held, records int64) float64 {
	if held <= 0 {
		return 0
	}
	return float64(bytes) / float64(held) * float64(records) / (1 << 20)
}

// deleteKafkaTopic deletes a run's topic, which frees kfake's memory.
func deleteKafkaTopic(k *kafkaServer, topic string) error {
	return kafkaAdmin(k, func(ctx context.Context, adm *kadm.Client) error {
		resp, err := adm.DeleteTopic(ctx, topic)
		if err != nil {
			return err
		}
		return resp.Err
	})
}

// kafkaSettings are a kafka run's settings: the brokers, the run's topic,
// which the harness created, and the ACK mode. The rest is the sink's
// defaults (zstd, 5 ms linger), as a deploy would start it.
func kafkaSettings(brokers, topic, ack string) []string {
	return []string{"SINK=kafka", "ACK=" + ack, "KAFKA_BROKERS=" + brokers, "KAFKA_TOPIC=" + topic}
}
