package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/gen"
)

func TestRunWritesCaptureAndTruth(t *testing.T) {
	dir := t.TempDir()
	capPath, truthPath := filepath.Join(dir, "x.pcap"), filepath.Join(dir, "x.json")
	var stdout, stderr bytes.Buffer
	args := []string{"-o", capPath, "-n", "3000", "--seed", "5", "--tcp", "0.2", "--zones", "Example.COM.,b.test",
		"--qtypes", "A:1,TXT:1", "--latency-median", "5ms", "--truth", truthPath, "--start", "2025-03-01T10:00:00Z"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "packets") {
		t.Errorf("no summary: %q", stderr.String())
	}
	got, err := os.ReadFile(capPath)
	if err != nil {
		t.Fatal(err)
	}
	// The same settings through the API give the same bytes and truth.
	cfg := gen.DefaultConfig()
	cfg.Packets, cfg.Seed, cfg.TCP = 3000, 5, 0.2
	cfg.Zones = []string{"example.com", "b.test"}
	cfg.QTypes = []gen.QTypeWeight{{Type: 1, Weight: 1}, {Type: 16, Weight: 1}}
	cfg.LatencyMedian = 5 * time.Millisecond
	cfg.Start = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var want bytes.Buffer
	wantTruth, err := gen.Write(&want, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("CLI output differs from gen.Write with the same settings")
	}
	var tr gen.Truth
	b, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tr, wantTruth) {
		t.Errorf("truth file %+v\nwant %+v", tr, wantTruth)
	}
	for _, key := range []string{`"dns_queries"`, `"tcp_syn"`, `"distinct_qnames"`, `"rcodes"`, `"NXDOMAIN"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("truth JSON lacks %s", key)
		}
	}
}

func TestRunStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-o", "-", "-n", "100", "-q", "--format", "pcapng"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stdout.Len() < 1000 || !bytes.HasPrefix(stdout.Bytes(), []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Errorf("stdout is not a pcapng capture (%d bytes)", stdout.Len())
	}
	if stderr.Len() != 0 {
		t.Errorf("-q printed %q", stderr.String())
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "y.pcap")
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, 0},
		{[]string{"-n", "10"}, 2},
		{[]string{"-o", out, "--tcp", "2"}, 2},
		{[]string{"-o", out, "--qtypes", "A:1,BOGUS:2"}, 2},
		{[]string{"-o", out, "--format", "erf"}, 2},
		{[]string{"-o", out, "--start", "yesterday"}, 2},
		{[]string{"-o", out, "--zones", "victim.example"}, 2},
		{[]string{"-o", out, "--no-such-flag"}, 2},
		{[]string{"-o", out, "extra"}, 2},
		{[]string{"-o", filepath.Join(dir, "missing", "z.pcap"), "-n", "10"}, 1},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, &stdout, &stderr); code != tt.code {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, code, tt.code, stderr.String())
		}
	}
}
