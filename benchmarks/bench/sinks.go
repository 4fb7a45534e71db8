package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// sinkLabel is a run as the tables show it: null, file/enqueued, ...
func sinkLabel(run string) string {
	return strings.Replace(run, "-", "/", 1)
}

var (
	completedRE = regexp.MustCompile(`shutdown complete.* completed=([0-9]+)`)
	fsyncsRE    = regexp.MustCompile(`shutdown complete.* file_fsyncs=([0-9]+)`)
	deletedRE   = regexp.MustCompile(`deleted the oldest segment.* bytes=([0-9]+)`)
	s3ShippedRE = regexp.MustCompile(`shutdown complete.* s3_shipped=([0-9]+) s3_upload_errors=([0-9]+) s3_backlog=([0-9]+)`)
	unknownSink = regexp.MustCompile(`(?i)(unknown sink|invalid SINK).*`)
)

// sinkSection runs fastingest with each sink run asked (SINKS), interleaved
// for the rounds asked, under wrk. Each file run writes to a fresh directory
// in the work directory, each nats run to a fresh JetStream stream on a local
// nats-server started once for the section, each kafka run to a fresh topic
// on kfake, started once too; all are bounded by SINK_RETAIN_MIB and deleted
// after the run. nats-server's and kfake's CPU is measured on its own, not
// counted in fastingest's. A run that fails is reported and the section goes
// on.
func (b *bench) sinkSection() {
	c, r := &b.cfg, b.res
	fmt.Printf("\n== sinks: %d interleaved round(s) of %s per run, -t1 -c%d: %s\n", c.rounds, c.duration, c.conns, strings.Join(c.sinks, " "))
	var nats *natsServer
	natsErr := ""
	if r.natsRuns > 0 {
		var err error
		switch {
		case b.natsServer == "":
			natsErr = b.natsServerErr
		default:
			if nats, err = b.startNats(); err != nil {
				natsErr = err.Error()
				fmt.Printf("  nats-server did not start: %s\n", natsErr)
			} else {
				fmt.Printf("  nats-server (pid %d) on 127.0.0.1:%d with JetStream; %s\n", nats.pid(), nats.port, b.pin.natsText)
			}
		}
	}
	var moto *motoServer
	motoErr := ""
	if strings.Contains(" "+strings.Join(c.sinks, " "), " file+s3-") {
		var err error
		if moto, err = b.startMoto(); err != nil {
			motoErr = err.Error()
			fmt.Printf("  moto did not start: %s\n", motoErr)
		} else {
			fmt.Printf("  moto's S3 server (pid %d) on 127.0.0.1:%d, on the load generator's CPU\n", moto.pid(), moto.port)
		}
	}
	var kafka *kafkaServer
	kafkaErr := ""
	if c.kafkaRuns() > 0 {
		var err error
		if kafka, err = b.startKfake(); err != nil {
			kafkaErr = err.Error()
			fmt.Printf("  kfake did not start: %s\n", kafkaErr)
		} else {
			fmt.Printf("  kfake (pid %d), one broker on %s, on the load generator's CPU\n", kafka.pid(), kafka.brokers)
		}
	}
	if strings.Contains(" "+strings.Join(c.sinks, " "), " file") {
		var st syscall.Statfs_t
		if syscall.Statfs(b.work, &st) == nil {
			if free := int64(st.Bavail) * st.Bsize >> 20; free < 2*int64(c.sinkRetainMiB) {
				notice("%d MiB free in %s, under 2 x SINK_RETAIN_MIB (%d): file runs may fill the disk", free, b.work, c.sinkRetainMiB)
			}
		}
	}
	skip := map[string]string{} // run -> why later rounds do not try it again
	for round := 1; round <= c.rounds; round++ {
		for _, run := range c.sinks {
			if why := skip[run]; why != "" {
				r.sinkFailures = append(r.sinkFailures, sinkFailure{run, round, "not run: " + why})
				continue
			}
			err := b.sinkRun(run, round, coServers{nats, natsErr, moto, motoErr, kafka, kafkaErr}, skip)
			if err == nil {
				continue
			}
			fmt.Printf("  round %d %-14s FAILED: %s\n", round, sinkLabel(run), err)
			r.sinkFailures = append(r.sinkFailures, sinkFailure{run, round, err.Error()})
			b.warn("sink run %s, round %d failed: %v", sinkLabel(run), round, err)
			if skip[run] != "" && round < c.rounds {
				fmt.Printf("  (not run again in later rounds: %s)\n", skip[run])
			}
		}
	}
	if nats != nil {
		r.natsRSS = "?"
		if rss, err := peakRSSMiB(nats.pid()); err == nil {
			r.natsRSS = strconv.FormatFloat(rss, 'f', 1, 64)
		}
		b.stopNats(nats)
	}
	if moto != nil {
		b.stopMoto(moto)
	}
	if kafka != nil {
		r.kfakeRSS = "?"
		if rss, err := peakRSSMiB(kafka.pid()); err == nil {
			r.kfakeRSS = strconv.FormatFloat(rss, 'f', 1, 64)
		}
		b.stopKfake(kafka)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n== sinks, every round (-t1 -c%d -d%s --latency; stored MiB and parcels include the warm-up)\n", c.conns, c.duration)
	writeTable(&sb, sinkColumns, r.sinkRows)
	if len(r.sinkFailures) > 0 {
		sb.WriteString("failed sink runs:\nrun\tround\treason\n")
		for _, f := range r.sinkFailures {
			fmt.Fprintf(&sb, "%s\t%d\t%s\n", f.run, f.round, f.reason)
		}
	}
	b.appendOut(sb.String())
}

// coServers are the servers the sink section started for the sinks to
// store into, each nil with why it is not running.
type coServers struct {
	nats     *natsServer
	natsErr  string
	moto     *motoServer
	motoErr  string
	kafka    *kafkaServer
	kafkaErr string
}

// sinkRun starts fastingest for one sink run, warms it up, measures it with
// wrk and stops it; it adds a row to the results and prints a line, or
// returns why it failed. A run that cannot succeed in later rounds either is
// named in skip.
func (b *bench) sinkRun(run string, round int, cs coServers, skip map[string]string) error {
	c := &b.cfg
	label := sinkLabel(run)
	nats, natsErr, moto, motoErr, kafka := cs.nats, cs.natsErr, cs.moto, cs.motoErr, cs.kafka
	settings := []string{"MAX_WORKERS=1000", "MAX_QUEUE=10000", "LOG_LEVEL=info"}
	dir, stream, topic := "", "", ""
	var co *proc
	switch kind, ack, _ := strings.Cut(run, "-"); kind {
	case "null":
		settings = append(settings, "SINK=null")
	case "file":
		dir = filepath.Join(b.work, fmt.Sprintf("data-%s-%d", run, round))
		settings = append(settings, "SINK=file", "ACK="+ack, "DATA_DIR="+dir,
			fmt.Sprintf("RETAIN_BYTES=%dMiB", c.sinkRetainMiB), fmt.Sprintf("SEGMENT_BYTES=%dMiB", c.sinkRetainMiB/4))
	case "file+s3":
		// The file sink shipping every closed segment to moto's S3,
		// gzipped: what shipping costs the request path.
		if moto == nil {
			skip[run] = "moto is not running"
			return fmt.Errorf("moto is not running: %s", motoErr)
		}
		bucket := fmt.Sprintf("bench-%d-%d", round, b.seq+1)
		if err := motoPut(moto, bucket); err != nil {
			return fmt.Errorf("cannot create the bucket %s: %w", bucket, err)
		}
		dir = filepath.Join(b.work, fmt.Sprintf("data-%s-%d", strings.Replace(run, "+", "-", 1), round))
		settings = append(settings, "SINK=file", "ACK="+ack, "DATA_DIR="+dir,
			fmt.Sprintf("RETAIN_BYTES=%dMiB", c.sinkRetainMiB), fmt.Sprintf("SEGMENT_BYTES=%dMiB", c.sinkRetainMiB/4))
		settings = append(settings, s3Settings(moto, bucket)...)
		co = moto.proc
	case "nats":
		if nats == nil {
			skip[run] = "nats-server is not running"
			return fmt.Errorf("nats-server is not running: %s", natsErr)
		}
		stream = fmt.Sprintf("BENCH_%s_%d", strings.Replace(run, "-", "_", 1), round)
		if _, err := b.natsAPI(nats, "STREAM.CREATE."+stream, streamConfig(stream, int64(c.sinkRetainMiB)<<20)); err != nil {
			return fmt.Errorf("cannot create the JetStream stream %s: %w", stream, err)
		}
		settings = append(settings, "SINK=nats", "ACK="+ack, "NATS_URL=nats://127.0.0.1:"+strconv.Itoa(nats.port),
			"NATS_SUBJECT=bench."+stream, "NATS_STREAM="+stream)
		co = nats.proc
	case "kafka":
		if kafka == nil {
			skip[run] = "kfake is not running"
			return fmt.Errorf("kfake is not running: %s", cs.kafkaErr)
		}
		topic = kafkaTopic(run, round)
		if err := b.createKafkaTopic(kafka, topic); err != nil {
			return fmt.Errorf("cannot create the topic %s on kfake: %w", topic, err)
		}
		settings = append(settings, kafkaSettings(kafka.brokers, topic, ack)...)
		co = kafka.proc
	}

	var m measurement
	var runErr error
	var log []byte
	s, err := b.launch("fastingest", settings...)
	var le *launchError
	switch {
	case errors.As(err, &le):
		log = le.log
		if kind, _, _ := strings.Cut(run, "-"); (stream != "" || topic != "") && unknownSink.Match(le.log) {
			skip[run] = "SINK=" + kind + " is not supported by this fastingest build"
			runErr = fmt.Errorf("SINK=%s is not supported by this fastingest build yet: it exited with status %d: %s",
				kind, le.status, strings.ReplaceAll(strings.TrimSuffix(unknownSink.FindString(string(le.log)), `"`), `\"`, `"`))
		} else {
			runErr = fmt.Errorf("%s: %s", le.msg, strings.ReplaceAll(tail(le.log, 2), "\n", " "))
		}
	case err != nil:
		runErr = err
	default:
		if runErr = b.warmUp(s, "fastingest ("+label+")"); runErr == nil {
			m, runErr = b.measureWrk(s, "fastingest", fmt.Sprintf("%s, round %d", label, round), co)
		}
		b.stopServer(s, "fastingest ("+label+")")
		log, _ = os.ReadFile(s.log)
	}

	completed := int64(-1)
	if ms := completedRE.FindAllSubmatch(log, -1); len(ms) > 0 {
		completed, _ = strconv.ParseInt(string(ms[len(ms)-1][1]), 10, 64)
	}
	stored, parcels, detail := math.NaN(), int64(-1), ""
	if runErr == nil && dir != "" {
		stored, parcels, detail = fileRunStored(dir, log, completed)
		if co != nil {
			detail += fmt.Sprintf("  moto %s CPU us/req (CPU %s%%)", fixed(m.coCPU, 2), pct(m.coUtil))
			if ms := s3ShippedRE.FindAllSubmatch(log, -1); len(ms) > 0 {
				last := ms[len(ms)-1]
				detail += fmt.Sprintf("; shipped %s segments, %s upload errors, %s left to ship", last[1], last[2], last[3])
				if string(last[3]) != "0" {
					b.warn("fastingest (%s, round %d): %s segments not shipped at shutdown: the backlog did not keep up", label, round, last[3])
				}
			} else {
				b.warn("fastingest (%s, round %d): no s3_shipped in the shutdown summary", label, round)
			}
		}
	} else if runErr == nil && stream != "" {
		if data, err := b.natsAPI(nats, "STREAM.INFO."+stream, ""); err != nil {
			b.warn("fastingest (%s, round %d): cannot read the stream's state: %v", label, round, err)
		} else {
			var st streamState
			_ = json.Unmarshal(data, &st)
			s := st.State
			// max_bytes may have discarded the oldest messages: scale up.
			stored = 0
			if s.Messages > 0 {
				stored = float64(s.Bytes) / float64(s.Messages) * float64(s.LastSeq) / (1 << 20)
			}
			parcels = s.LastSeq
			if s.LastSeq <= 0 {
				b.warn("fastingest (%s, round %d): JetStream stored no message", label, round)
			}
			if completed >= 0 && s.LastSeq < completed {
				b.warn("fastingest (%s, round %d): completed %d parcels but the stream holds %d", label, round, completed, s.LastSeq)
			}
		}
		detail = fmt.Sprintf("  nats-server %s CPU us/req (CPU %s%%)  stored %s MiB", fixed(m.coCPU, 2), pct(m.coUtil), fixed(stored, 1))
	} else if runErr == nil && topic != "" {
		var err error
		if parcels, stored, err = kafkaStored(kafka, topic); err != nil {
			b.warn("fastingest (%s, round %d): cannot read the topic's offsets: %v", label, round, err)
			stored, parcels = math.NaN(), -1
		} else {
			if parcels <= 0 {
				b.warn("fastingest (%s, round %d): the topic holds no record", label, round)
			}
			if completed >= 0 && parcels < completed {
				b.warn("fastingest (%s, round %d): completed %d parcels but the topic holds %d", label, round, completed, parcels)
			}
		}
		detail = fmt.Sprintf("  kfake %s CPU us/req (CPU %s%%)  stored %s MiB", fixed(m.coCPU, 2), pct(m.coUtil), fixed(stored, 1))
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
	if stream != "" {
		if _, err := b.natsAPI(nats, "STREAM.DELETE."+stream, ""); err != nil {
			b.warn("cannot delete the JetStream stream %s: %v", stream, err)
		}
	}
	if topic != "" {
		if err := deleteKafkaTopic(kafka, topic); err != nil {
			b.warn("cannot delete the topic %s on kfake: %v", topic, err)
		}
	}
	if runErr != nil {
		return runErr
	}
	b.res.sinkRows = append(b.res.sinkRows, row{name: run, round: round, measurement: m, storedMiB: stored, parcels: parcels})
	fmt.Println(roundLine(round, 14, label, &m) + detail)
	return nil
}

// fileRunStored returns what a file run wrote, in MiB (the segments left and
// those RETAIN_BYTES deleted, which the server's log names), the parcels it
// stored, and a line about it.
func fileRunStored(dir string, log []byte, completed int64) (mib float64, parcels int64, detail string) {
	var left int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".ndjson") {
			if fi, err := d.Info(); err == nil {
				left += fi.Size()
			}
		}
		return nil
	})
	var deleted int64
	for _, m := range deletedRE.FindAllSubmatch(log, -1) {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		deleted += n
	}
	mib = float64(left+deleted) / (1 << 20)
	detail = fmt.Sprintf("  wrote %.1f MiB", mib)
	if deleted > 0 {
		detail += fmt.Sprintf(" (%.0f MiB deleted by RETAIN_BYTES)", float64(deleted)/(1<<20))
	}
	if ms := fsyncsRE.FindAllSubmatch(log, -1); len(ms) > 0 && completed >= 0 {
		if f, _ := strconv.ParseInt(string(ms[len(ms)-1][1]), 10, 64); f > 0 {
			detail += fmt.Sprintf(", %d fsyncs (%d parcels each)", f, completed/f)
		}
	}
	return mib, completed, detail
}
