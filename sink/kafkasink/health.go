package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errTopicMissing is wrapped by checkTopic when the cluster does not know
// the topic.
var errTopicMissing = errors.New("the topic does not exist")

// watch checks the cluster every CheckInterval, and at once when asked
// (checkNow), until Close.
func (s *Sink) watch() {
	defer s.checker.Done()
	timer := time.NewTimer(s.cfg.CheckInterval)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.wake:
			timer.Stop()
		case <-s.stop:
			return
		}
		s.check(s.life)
		timer.Reset(s.cfg.CheckInterval)
	}
}

// checkNow asks the checker to look at the cluster without waiting for the
// next interval; it never blocks.
func (s *Sink) checkNow() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// check asks the cluster whether the topic is usable, creates it if it is
// missing and may be created, and records the answer for Healthy. ctx
// bounds it, and CheckTimeout too.
func (s *Sink) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
	defer cancel()
	err := s.checkTopic(ctx)
	if errors.Is(err, errTopicMissing) && s.cfg.CreateTopic {
		if err = s.createTopic(ctx); err == nil {
			err = s.checkTopic(ctx)
		}
	}
	if s.life.Err() != nil {
		return // closing: the error is ours
	}
	s.setHealth(err)
}

// checkTopic asks a broker for the topic's metadata: it must exist, and
// each partition must have a leader to take records.
func (s *Sink) checkTopic(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(s.cfg.Topic)
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = false
	resp, err := req.RequestWith(ctx, s.client)
	if err != nil {
		if p := s.connErr.Load(); p != nil {
			return fmt.Errorf("kafkasink: no Kafka broker of %s answers: %w (last connection error: %v)", s.cfg.Brokers, err, *p)
		}
		return fmt.Errorf("kafkasink: no Kafka broker of %s answers: %w", s.cfg.Brokers, err)
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("kafkasink: Kafka answered for %d topics, asked for %s", len(resp.Topics), s.cfg.Topic)
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("kafkasink: Kafka topic %s: %w (create it, or set KAFKA_CREATE_TOPIC=1)", s.cfg.Topic, errTopicMissing)
		}
		return fmt.Errorf("kafkasink: Kafka topic %s: %w", s.cfg.Topic, err)
	}
	if len(t.Partitions) == 0 {
		return fmt.Errorf("kafkasink: Kafka topic %s: %w", s.cfg.Topic, errTopicMissing)
	}
	for _, p := range t.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil && !errors.Is(err, kerr.ReplicaNotAvailable) {
			return fmt.Errorf("kafkasink: Kafka topic %s partition %d: %w", s.cfg.Topic, p.Partition, err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("kafkasink: Kafka topic %s partition %d has no leader", s.cfg.Topic, p.Partition)
		}
	}
	return nil
}

// createTopic creates the topic with the configured partitions and
// replicas (-1, the cluster's default, for 0). Another process creating it
// first is no error.
func (s *Sink) createTopic(ctx context.Context) error {
	partitions, replication := int32(s.cfg.Partitions), int16(s.cfg.Replication)
	if partitions == 0 {
		partitions = -1
	}
	if replication == 0 {
		replication = -1
	}
	_, err := kadm.NewClient(s.client).CreateTopic(ctx, partitions, replication, nil, s.cfg.Topic)
	switch {
	case err == nil:
		s.log.Info("created the Kafka topic", "topic", s.cfg.Topic,
			"partitions", partitionsAttr(s.cfg.Partitions), "replication", partitionsAttr(s.cfg.Replication))
		return nil
	case errors.Is(err, kerr.TopicAlreadyExists):
		return nil
	}
	return fmt.Errorf("kafkasink: cannot create the Kafka topic %s: %w", s.cfg.Topic, err)
}

// partitionsAttr writes a partition or replica count for the log: 0 is
// the cluster's default.
func partitionsAttr(n int) string {
	if n == 0 {
		return "the cluster's default"
	}
	return strconv.Itoa(n)
}

// setHealth records whether the topic is usable (err == nil), logging a
// change: a warning when it stops being usable (at most once per interval
// while it flaps), a line when it is usable again.
func (s *Sink) setHealth(err error) {
	var old *error
	if err == nil {
		old = s.health.Swap(nil)
	} else {
		old = s.health.Swap(&err)
	}
	switch {
	case err == nil && old != nil && *old != errUnchecked:
		s.log.Info("Kafka takes parcels again", "topic", s.cfg.Topic)
	case err != nil && old == nil:
		if ok, suppressed := s.healthLog.Allow(); ok {
			s.log.Warn("Kafka cannot take parcels; fastingest answers 503 until it can, parcels taken wait",
				"topic", s.cfg.Topic, "err", err, "suppressed_since_last", suppressed)
		}
	}
}
