package gen

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// FuzzWrite drives the generator with arbitrary option values. Whatever the options, Write
// must not panic, and when it succeeds the capture must decode and match its truth.
func FuzzWrite(f *testing.F) {
	f.Add(uint64(1), uint16(300), uint8(30), uint8(50), uint8(20), uint8(100), uint8(100), uint8(60), uint8(40), uint16(50), uint8(3), uint8(1), uint16(2000), uint8(10), uint8(2), uint8(0))
	f.Add(uint64(99), uint16(500), uint8(255), uint8(255), uint8(255), uint8(255), uint8(255), uint8(255), uint8(255), uint16(0), uint8(0), uint8(0), uint16(1), uint8(255), uint8(255), uint8(1))
	f.Add(uint64(3), uint16(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint8(0), uint16(20), uint8(200), uint8(10), uint16(65535), uint8(0), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, packets uint16, tcp, v6, timeout, split, reorder, retrans, frag uint8,
		flood uint16, clients, servers uint8, qps uint16, latency, sigma uint8, format uint8) {
		share := func(v uint8) float64 { return float64(v) / 255 }
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg.Packets = int(packets % 600)
		cfg.Names = 1 + int(packets%97)
		cfg.Zipf = 0.2 + float64(seed%40)/10
		cfg.TCP = share(tcp)
		cfg.IPv6 = share(v6)
		cfg.Timeout = share(timeout)
		cfg.TCPMulti = share(split)
		cfg.TCPSplit = share(split)
		cfg.TCPReorder = share(reorder)
		cfg.TCPRetransmit = share(retrans) / 4
		cfg.Fragment = share(frag)
		cfg.ECS, cfg.DO, cfg.MixedCase, cfg.EDNS = share(v6), share(tcp), share(reorder), share(timeout)
		cfg.NXDomain, cfg.Refused, cfg.ServFail, cfg.NoData = share(frag)/3, share(split)/3, share(retrans)/3, share(tcp)
		cfg.RandomSubdomain = int(flood % 300)
		cfg.Malformed = share(retrans)
		cfg.Clients = 1 + int(clients)
		cfg.Servers = 1 + int(servers)%MaxServers
		cfg.QPS = 1 + float64(qps)*20
		cfg.LatencyMedian = time.Duration(1+int(latency)) * 100 * time.Microsecond * time.Duration(1+int(latency)/16)
		cfg.LatencySigma = float64(sigma) / 25
		cfg.Format = Format(format % 3)
		if err := cfg.Validate(); err != nil {
			t.Skip(err)
		}
		var buf bytes.Buffer
		want, err := Write(&buf, cfg)
		if errors.Is(err, ErrExhausted) {
			return
		}
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		frames, _ := readCapture(t, buf.Bytes())
		for i := 1; i < len(frames); i++ {
			if frames[i].ts < frames[i-1].ts {
				t.Fatalf("frame %d: timestamp goes back", i)
			}
		}
		got, st := recount(t, frames)
		got.TCPConnections, got.Servers = want.TCPConnections, want.Servers
		if want.Packets == 0 {
			got.FirstTS, got.LastTS = want.FirstTS, want.LastTS
		}
		if st.orphans != 0 || st.keyReuse != 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("recount differs (orphans %d, key reuse %d):\n got %+v\nwant %+v", st.orphans, st.keyReuse, got, want)
		}
	})
}

// FuzzParseQTypes: any string either fails cleanly or yields a mix that validates.
func FuzzParseQTypes(f *testing.F) {
	for _, s := range []string{DefaultQTypes, "a:1", "TYPE65:0.5,MX", ",,:", "A:1e308,AAAA:1e308", "A:-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQTypes(s)
		if err != nil {
			return
		}
		cfg := DefaultConfig()
		cfg.QTypes = q
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate: %v", s, err)
		}
	})
}
