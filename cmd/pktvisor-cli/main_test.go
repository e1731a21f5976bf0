package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/tui"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    tui.Config
		version bool
		wantErr string
	}{
		{nil, tui.Config{Host: "localhost", Port: 10853, Policy: "default"}, false, ""},
		{[]string{"-H", "10.0.0.1", "-p", "8080", "-P", "replay"}, tui.Config{Host: "10.0.0.1", Port: 8080, Policy: "replay"}, false, ""},
		{[]string{"--host=::1", "--port", "1", "--policy", "x"}, tui.Config{Host: "::1", Port: 1, Policy: "x"}, false, ""},
		{[]string{"--tls"}, tui.Config{Host: "localhost", Port: 10853, Policy: "default", TLS: true}, false, ""},
		{[]string{"--tls-noverify"}, tui.Config{Host: "localhost", Port: 10853, Policy: "default", TLSNoVerify: true}, false, ""},
		{[]string{"--version"}, tui.Config{Host: "localhost", Port: 10853, Policy: "default"}, true, ""},
		{[]string{"-p", "0"}, tui.Config{}, false, "invalid port 0"},
		{[]string{"-p", "70000"}, tui.Config{}, false, "invalid port 70000"},
		{[]string{"-p", "x"}, tui.Config{}, false, "invalid argument"},
		{[]string{"-P", ""}, tui.Config{}, false, "must not be empty"},
		{[]string{"extra"}, tui.Config{}, false, `unexpected argument "extra"`},
		{[]string{"--nope"}, tui.Config{}, false, "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			o, err := parseArgs(tc.args, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.cfg != tc.want || o.showVersion != tc.version {
				t.Errorf("got %+v version %v, want %+v version %v", o.cfg, o.showVersion, tc.want, tc.version)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseArgs([]string{"-h"}, &out)
	if !errors.Is(err, errHelp) {
		t.Fatalf("err %v, want errHelp", err)
	}
	for _, want := range []string{"Usage: pktvisor-cli [-H HOST] [-p PORT] [-P POLICY] [--tls] [--tls-noverify] [-h] [--version]", "--tls-noverify", "NO_COLOR"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
