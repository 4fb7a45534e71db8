package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// motoServer is moto's S3 server, started for the sink section's file+s3
// runs: an S3 that fastingest ships its closed segments to.
type motoServer struct {
	*proc
	port int
}

func (m *motoServer) url() string { return "http://127.0.0.1:" + strconv.Itoa(m.port) }

// startMoto starts `python3 -m moto.server` on a free port of 127.0.0.1,
// pinned on the load generator's CPU (it competes with the load, not with
// fastingest), and waits until it answers.
func (b *bench) startMoto() (*motoServer, error) {
	py, err := exec.Command("python3", "-c", "import moto.server, sys; print(sys.executable)").Output()
	if err != nil {
		return nil, fmt.Errorf("moto is not installed (python3 -m moto.server unavailable; the machine image has it, pip install 'moto[server]' elsewhere)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	argv := append(slices.Clone(b.pin.load), strings.TrimSpace(string(py)), "-m", "moto.server",
		"-H", "127.0.0.1", "-p", strconv.Itoa(port))
	p, err := startProc(&b.procs, "moto", argv, serverEnv(os.Environ(), nil), filepath.Join(b.work, "moto.log"))
	if err != nil {
		return nil, err
	}
	m := &motoServer{proc: p, port: port}
	if poll(30*time.Second, 100*time.Millisecond, func() bool { return motoPut(m, "") == nil || !p.alive() }) && p.alive() {
		return m, nil
	}
	b.stopMoto(m)
	return nil, fmt.Errorf("moto's S3 server did not answer on 127.0.0.1:%d within 30 s", port)
}

// motoPut sends PUT /path to moto: with a bucket name, creates the bucket
// (moto does not check signatures); with "", checks that it answers.
func motoPut(m *motoServer, bucket string) error {
	method := http.MethodPut
	if bucket == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, m.url()+"/"+bucket, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /%s: %s", method, bucket, resp.Status)
	}
	return nil
}

// stopMoto stops moto and keeps its log.
func (b *bench) stopMoto(m *motoServer) {
	m.stop(10 * time.Second)
	b.procs.forget(m.proc)
	log, _ := os.ReadFile(m.log)
	b.rawLog(fmt.Sprintf("moto log (exit status %d), last lines", m.status()), []byte(tail(log, 20)))
}

// s3Settings are a file+s3 run's settings beside the file sink's: a bucket
// of its own on moto, and AWS settings that reach nothing but moto.
func s3Settings(m *motoServer, bucket string) []string {
	return []string{"S3_BUCKET=" + bucket, "AWS_ENDPOINT_URL_S3=" + m.url(), "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}
}
