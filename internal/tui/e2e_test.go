package tui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEndTmux runs the real binaries: pktvisord replaying testdata/sample.pcap (as fast
// as possible, so its numbers are final and stable) and pktvisor-cli inside a detached tmux
// session of 160×48. It reads the screen with `tmux capture-pane` and checks it against the
// agent's own JSON, then stops the agent (the CLI must say so and keep the numbers) and
// starts it again (the CLI must recover by itself).
func TestEndToEndTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	capture := filepath.Join(root, "testdata", "sample.pcap")
	if _, err := os.Stat(capture); err != nil {
		t.Skipf("capture missing: %v", err)
	}
	dir := t.TempDir()
	agentBin, cliBin := filepath.Join(dir, "pktvisord"), filepath.Join(dir, "pktvisor-cli")
	build := exec.Command(goTool(), "build", "-o", dir, "./cmd/pktvisord", "./cmd/pktvisor-cli")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	port := freePort(t)
	cfgFile := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`version: "1.0"
visor:
  taps:
    sample:
      input_type: pcap
      config:
        pcap_file: %q
        realtime: false
        host_spec: 127.0.0.1/32,::1/128
  policies:
    default:
      kind: collection
      input:
        tap: sample
        input_type: pcap
      handlers:
        modules:
          net:
            type: net
          dns:
            type: dns
          pcap_stats:
            type: pcap
`, capture)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	startAgent := func() *exec.Cmd {
		cmd := exec.Command(agentBin, "-l", "127.0.0.1", "-p", strconv.Itoa(port), "--config", cfgFile)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	agent := startAgent()
	window := waitStableWindow(t, "http://"+addr+"/api/v1/policies/default/metrics/window/5")

	socket := fmt.Sprintf("pvcli-test-%d", os.Getpid())
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-L", socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", "cli", "-x", "160", "-y", "48",
		"env", "NO_COLOR=1", cliBin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", socket, "kill-server").Run() })
	screen := func() string { return tm("capture-pane", "-p", "-t", "cli") }
	waitScreen := func(what string, ok func(string) bool) string {
		t.Helper()
		var s string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if s = screen(); ok(s) {
				return s
			}
		}
		t.Fatalf("screen never showed %s:\n%s", what, s)
		return ""
	}

	// 1. The header numbers are the agent's, every table is on screen.
	pkts := wantSegments(t, window, "default")[0]
	s := waitScreen("the data", func(s string) bool { return strings.Contains(s, pkts) && strings.Contains(s, "connected to") })
	for _, want := range wantSegments(t, window, "default") {
		if strings.HasPrefix(want, "Period ") {
			continue // the length of a still-open period grows with wall time; checked below
		}
		if !strings.Contains(s, want) {
			t.Errorf("screen lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`Period (\d+)s`).FindStringSubmatch(s); m == nil {
		t.Error("no period on screen")
	} else if shown, _ := strconv.Atoi(m[1]); math.Abs(float64(shown)-num(schemaOf(t, generic(t, window), "default", "packets"), "period.length")) > 30 {
		t.Errorf("period %ds on screen, agent said %v", shown, num(schemaOf(t, generic(t, window), "default", "packets"), "period.length"))
	}
	checkLatency(t, s, window, "default")
	for _, title := range TableTitles() {
		if !strings.Contains(s, " "+title+" ") {
			t.Errorf("table %q not on screen", title)
		}
	}
	if lines := strings.Split(strings.TrimRight(s, "\n"), "\n"); len(lines) != 48 {
		t.Errorf("screen has %d lines, want 48", len(lines))
	}
	if t.Failed() {
		t.Fatalf("screen:\n%s", s)
	}

	// 2. The agent stops: the status says so, the numbers stay.
	_ = agent.Process.Signal(syscall.SIGTERM)
	_ = agent.Wait()
	down := "! cannot reach " + addr + ": connection refused — retrying"
	s = waitScreen("the outage", func(s string) bool { return strings.Contains(s, down) })
	if !strings.Contains(s, pkts) || !strings.Contains(s, " Top QName 2 ") {
		t.Errorf("data left the screen during the outage:\n%s", s)
	}

	// 3. The agent is back: the CLI recovers by itself.
	startAgent()
	waitStableWindow(t, "http://"+addr+"/api/v1/policies/default/metrics/window/5")
	s = waitScreen("the recovery", func(s string) bool {
		return strings.Contains(s, "connected to "+addr) && !strings.Contains(s, "cannot reach")
	})
	if !strings.Contains(s, pkts) {
		t.Errorf("no data after recovery:\n%s", s)
	}

	// 4. q quits.
	tm("send-keys", "-t", "cli", "q")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if exec.Command(tmux, "-L", socket, "has-session", "-t", "cli").Run() != nil {
			return
		}
	}
	t.Error("q did not end pktvisor-cli")
}

// goTool is the go command of the toolchain running the test.
func goTool() string {
	if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitStableWindow polls until the agent answers twice in a row with the same packet
// counts (the file is read) and returns that answer.
func waitStableWindow(t *testing.T, url string) []byte {
	t.Helper()
	var last []byte
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		s, err := Decode(body, "default")
		if err != nil || s.Packets.Total == 0 {
			continue
		}
		if last != nil && bytes.Equal(stableKey(t, last), stableKey(t, body)) {
			return body
		}
		last = body
	}
	t.Fatalf("agent at %s never settled", url)
	return nil
}

// stableKey is the answer without its period (whose length grows with wall time).
func stableKey(t *testing.T, body []byte) []byte {
	s, err := Decode(body, "default")
	if err != nil {
		t.Fatal(err)
	}
	s.Packets.Period, s.DNS.Period = Period{}, Period{}
	return []byte(fmt.Sprintf("%+v", s))
}
