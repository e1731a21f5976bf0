package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/version"
)

// samplePath is the capture the repository ships (loopback DNS over UDP and TCP, Ethernet).
var samplePath = filepath.Join("..", "..", "testdata", "sample.pcap")

// runCmd calls run as main would and returns the exit status and both streams.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// lines splits output into its non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestUsageAndVersion(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		code       int
		wantStdout string // substring; "" = stdout must be empty
		wantStderr string // substring; "" = stderr must be empty
	}{
		{"help", []string{"--help"}, 0, "Usage: pktvisor-reader", ""},
		{"help short", []string{"-h"}, 0, "Usage: pktvisor-reader", ""},
		{"version", []string{"--version"}, 0, version.Version + "\n", ""},
		{"no file", nil, 1, "", "Usage: pktvisor-reader"},
		{"two files", []string{samplePath, samplePath}, 1, "", "Usage: pktvisor-reader"},
		// A mistyped option must say what was wrong, not exit silently.
		{"unknown flag", []string{"--no-such-flag", samplePath}, 1, "", "no-such-flag"},
		{"bad flag value", []string{"--periods", "many", samplePath}, 1, "", "many"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			check := func(stream, got, want string) {
				if want == "" && got != "" {
					t.Errorf("%s = %q, want empty", stream, got)
				}
				if !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", stream, got, want)
				}
			}
			check("stdout", stdout, tc.wantStdout)
			check("stderr", stderr, tc.wantStderr)
		})
	}
}

// pcapHeader is a classic little-endian pcap file header (microsecond timestamps).
func pcapHeader(linkType uint32) []byte {
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	return h
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBadInput: every unusable input ends with status 1, nothing on stdout and exactly one
// line on stderr that names the culprit (the file, or the bad value) and the reason.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty.pcap", nil)
	text := writeFile(t, dir, "notes.txt", []byte("this is not a capture\nat all\n"))
	// Link type 147 is DLT_USER0: a valid header, a link type no decoder handles.
	user0 := writeFile(t, dir, "user0.pcap", pcapHeader(147))
	badYAML := writeFile(t, dir, "policy.yaml", []byte("handlers: [unclosed\n"))
	noModules := writeFile(t, dir, "nomods.yaml", []byte("handlers:\n  window_config: {}\n"))
	unreadable := writeFile(t, dir, "secret.pcap", pcapHeader(1))
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pcap")
	subdir := filepath.Join(dir, "captures.pcap")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		args     []string
		contains []string // every one must appear in the single stderr line
		root     string   // non-empty: skip when running as root, for this reason
	}{
		{name: "missing file", args: []string{missing}, contains: []string{missing, "no such file"}},
		{name: "directory", args: []string{subdir}, contains: []string{subdir, "directory"}},
		{name: "unreadable", args: []string{unreadable}, contains: []string{unreadable, "permission denied"},
			root: "root reads a mode-000 file, so there is no permission error to report"},
		{name: "empty file", args: []string{empty}, contains: []string{empty, "empty"}},
		{name: "text file", args: []string{text}, contains: []string{text, "not a pcap"}},
		{name: "unsupported link type", args: []string{user0}, contains: []string{user0, "147", "unsupported link type"}},
		{name: "bad bpf", args: []string{"-b", "udp and and", samplePath}, contains: []string{"bpf", "syntax error"}},
		{name: "bpf port out of range", args: []string{"-b", "port 70000", samplePath}, contains: []string{"bpf", "70000"}},
		// The reference's exact message for a bad host spec.
		{name: "bad cidr", args: []string{"-H", "10.0.0.0/33", samplePath}, contains: []string{"invalid CIDR: 10.0.0.0/33"}},
		{name: "bad cidr in list", args: []string{"-H", "192.168.0.0/24,nonsense", samplePath}, contains: []string{"invalid CIDR: nonsense"}},
		{name: "bad config yaml", args: []string{"--config", badYAML, samplePath}, contains: []string{badYAML, "yaml"}},
		{name: "config without modules", args: []string{"--config", noModules, samplePath}, contains: []string{noModules, "modules"}},
		{name: "missing config", args: []string{"--config", missing, samplePath}, contains: []string{missing, "config"}},
		{name: "unknown input type", args: []string{"-i", "sflow", samplePath}, contains: []string{"sflow", "not supported"}},
		{name: "pcap file as dnstap", args: []string{"-i", "dnstap", samplePath}, contains: []string{"dnstap", "frame streams"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root != "" && os.Geteuid() == 0 {
				t.Skip(tc.root)
			}
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want empty", stdout)
			}
			ls := lines(stderr)
			if len(ls) != 1 {
				t.Fatalf("stderr has %d lines, want 1:\n%s", len(ls), stderr)
			}
			for _, want := range tc.contains {
				if !strings.Contains(ls[0], want) {
					t.Errorf("stderr %q does not contain %q", ls[0], want)
				}
			}
		})
	}
}

// pcapRecord is one record of a classic pcap file, found by walking the record headers.
type pcapRecord struct {
	off  int // offset of the 16-byte record header
	data []byte
}

// walkPcap reads a little-endian microsecond pcap by hand: independent of internal/capture.
func walkPcap(t *testing.T, file []byte) (link uint32, recs []pcapRecord) {
	t.Helper()
	if len(file) < 24 || binary.LittleEndian.Uint32(file) != 0xa1b2c3d4 {
		t.Fatalf("not a little-endian microsecond pcap")
	}
	link = binary.LittleEndian.Uint32(file[20:])
	for off := 24; off < len(file); {
		if off+16 > len(file) {
			t.Fatalf("record header at %d cut", off)
		}
		n := int(binary.LittleEndian.Uint32(file[off+8:]))
		if off+16+n > len(file) {
			t.Fatalf("record at %d cut", off)
		}
		recs = append(recs, pcapRecord{off, file[off+16 : off+16+n]})
		off += 16 + n
	}
	return link, recs
}

// isUDP is tcpdump's "udp" on an Ethernet frame: IPv4 protocol 17 or IPv6 next header 17
// (libpcap's "udp" does not walk IPv6 extension headers, nor look inside VLAN tags).
func isUDP(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		return len(f) >= 14+20 && f[14+9] == 17
	case 0x86dd:
		return len(f) >= 14+40 && f[14+6] == 17
	}
	return false
}

func readSample(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatalf("the repository's sample capture: %v", err)
	}
	return data
}

// decodeOne requires stdout to be exactly one JSON document and returns it.
func decodeOne(t *testing.T, stdout string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document (next: %v, %v)", extra, err)
	}
	return doc
}

// packetsTotal returns doc[key].packets.total.
func packetsTotal(t *testing.T, doc map[string]any, key string) int64 {
	t.Helper()
	body, _ := doc[key].(map[string]any)
	pk, _ := body["packets"].(map[string]any)
	n, ok := pk["total"].(json.Number)
	if !ok {
		t.Fatalf("%s.packets.total missing in %v", key, doc)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHappyPath(t *testing.T) {
	_, recs := walkPcap(t, readSample(t))
	for _, tc := range []struct {
		periods string
		key     string
	}{{"1", "1m"}, {"5", "5m"}} {
		t.Run(tc.key, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, "--periods", tc.periods, samplePath)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Contains(stderr, "level=WARN") || strings.Contains(stderr, "level=ERROR") {
				t.Errorf("stderr has a warning on a good capture:\n%s", stderr)
			}
			doc := decodeOne(t, stdout)
			if len(doc) != 1 {
				t.Fatalf("top-level keys %v, want only %q", keys(doc), tc.key)
			}
			body, ok := doc[tc.key].(map[string]any)
			if !ok {
				t.Fatalf("no object at %q: keys %v", tc.key, keys(doc))
			}
			for _, k := range []string{"packets", "dns", "pcap"} {
				if _, ok := body[k].(map[string]any); !ok {
					t.Errorf("%s.%s missing", tc.key, k)
				}
			}
			if len(body) != 3 {
				t.Errorf("%s holds %v, want packets, dns and pcap", tc.key, keys(body))
			}
			// The sample spans under a minute, so the window holds every record.
			if got := packetsTotal(t, doc, tc.key); got != int64(len(recs)) {
				t.Errorf("packets.total = %d, want %d records", got, len(recs))
			}
		})
	}
}

func TestBPFUDP(t *testing.T) {
	link, recs := walkPcap(t, readSample(t))
	if link != 1 {
		t.Fatalf("sample link type %d, the UDP count below reads Ethernet", link)
	}
	udp := 0
	for _, r := range recs {
		if isUDP(r.data) {
			udp++
		}
	}
	if udp == 0 || udp == len(recs) {
		t.Fatalf("%d UDP of %d frames: the sample no longer tests a filter", udp, len(recs))
	}
	code, stdout, stderr := runCmd(t, "--periods", "1", "-b", "udp", samplePath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := packetsTotal(t, decodeOne(t, stdout), "1m"); got != int64(udp) {
		t.Errorf("packets.total with -b udp = %d, want %d UDP frames", got, udp)
	}
}

// TestTruncated cuts the sample inside a record: the records before the cut are summarized,
// the exit status is 0 and stderr warns about the truncation.
func TestTruncated(t *testing.T) {
	file := readSample(t)
	_, recs := walkPcap(t, file)
	mid := recs[len(recs)/2]
	cases := []struct {
		name string
		cut  int
		want int // records wholly before the cut
	}{
		{"inside record data", mid.off + 16 + len(mid.data)/2, len(recs) / 2},
		{"inside record header", mid.off + 7, len(recs) / 2},
		{"after first record header", recs[0].off + 16, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "cut.pcap", file[:tc.cut])
			code, stdout, stderr := runCmd(t, "--periods", "1", p)
			if code != 0 {
				t.Fatalf("exit %d, want 0: %s", code, stderr)
			}
			doc := decodeOne(t, stdout)
			if tc.want > 0 {
				if got := packetsTotal(t, doc, "1m"); got != int64(tc.want) {
					t.Errorf("packets.total = %d, want the %d records before the cut", got, tc.want)
				}
			}
			warned := false
			for _, l := range lines(stderr) {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "truncated") {
					warned = true
				}
			}
			if !warned {
				t.Errorf("no truncation warning on stderr:\n%s", stderr)
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
