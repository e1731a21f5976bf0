package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	onlyTaps := filepath.Join(dir, "taps.yaml")
	os.WriteFile(onlyTaps, []byte("visor:\n  taps:\n    t:\n      input_type: pcap\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: \"2.0\"\nvisor: {}\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 1, "Nothing to do: specify --admin-api or IFACE."},
		{[]string{"--config", onlyTaps}, 1, "Nothing to do: specify --admin-api or IFACE."},
		{[]string{"--config", bad}, 1, "unsupported version"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, 1, "no such file"},
		{[]string{"--tls", "--admin-api"}, 1, "--tls needs --tls-cert and --tls-key"},
		{[]string{"-d", "lo"}, 1, "-d is not supported"},
		{[]string{"--bogus"}, 1, "unknown flag: --bogus"},
		{[]string{"a", "b"}, 1, "Usage: pktvisord"},
		{[]string{"--version"}, 0, "4."},
		{[]string{"-h"}, 0, "--prom-instance"},
		{[]string{"--admin-api", "-p", "1", "-l", "256.0.0.1"}, 1, "cannot listen"},
		{[]string{"-p", "0", "no-such-iface0"}, 1, `Couldn't find interface by provided name: \"no-such-iface0\"`},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		all := out.String() + errOut.String()
		if code != c.code || !strings.Contains(all, c.out) {
			t.Errorf("pktvisord %v: exit %d, want %d; output %q lacks %q", c.args, code, c.code, all, c.out)
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pktvisord test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The agent serves HTTPS with the given certificate, runs the policies of --config with
// options from visor.config, and stops on DELETE /api/v1/server.
func TestServeTLSWithConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	sample, _ := filepath.Abs("../../testdata/sample.pcap")
	port := freePort(t)
	cfg := fmt.Sprintf(`version: "1.0"
visor:
  config:
    admin_api: true
    prom_instance: lab1
    port: %d
    periods: 2
  taps:
    lab:
      input_type: pcap
      config:
        pcap_file: %q
        host_spec: 127.0.0.1/32,::1/128
  policies:
    main:
      kind: collection
      input:
        tap: lab
        input_type: pcap
      handlers:
        modules:
          dns:
            type: dns
`, port, sample)
	cfgFile := filepath.Join(dir, "pktvisord.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"-l", "127.0.0.1", "--tls", "--tls-cert", certFile, "--tls-key", keyFile, "--config", cfgFile}, &out, &errOut)
	}()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	var body []byte
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(base + "/api/v1/policies/main/metrics/window/2")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), `"total":2800`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete window over TLS: %v %s\n%s", err, body, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["main"].(map[string]any)["main-lab-dns"]; !ok {
		t.Errorf("window lacks main-lab-dns: %s", body)
	}
	resp, err := client.Get(base + "/api/v1/policies/main/metrics/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(prom), `dns_wire_packets_total{instance="lab1",handler="main-lab-dns",policy="main",tap="lab"} 2800`) {
		t.Errorf("prometheus output lacks the expected sample:\n%.2000s", prom)
	}
	// Plain HTTP to the TLS port is refused.
	if r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/metrics/app", port)); err == nil && r.StatusCode == 200 {
		t.Error("plain HTTP answered on the TLS port")
	}
	req, _ := http.NewRequest("DELETE", base+"/api/v1/server", nil)
	if resp, err := client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE /api/v1/server: %v", err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop after DELETE /api/v1/server")
	}
}
