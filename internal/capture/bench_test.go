package capture

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"
)

// benchFiles returns the large reference capture and a pcapng copy of it (written with
// pcapgo.NgWriter into a temporary directory).
func benchFiles(b *testing.B) (pcapPath, ngPath string) {
	pcapPath = filepath.Join(refDir, "dns_udp_tcp_random.pcap")
	if _, err := os.Stat(pcapPath); err != nil {
		b.Skipf("reference captures not available: %v", err)
	}
	f, err := os.Open(pcapPath)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	ngPath = filepath.Join(b.TempDir(), "random.pcapng")
	out, err := os.Create(ngPath)
	if err != nil {
		b.Fatal(err)
	}
	w, err := pcapgo.NewNgWriter(out, r.LinkType())
	if err != nil {
		b.Fatal(err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WritePacket(ci, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return pcapPath, ngPath
}

// BenchmarkReadFile reads the whole capture per op, with our reader and with pcapgo's
// zero-copy readers over the same 1 MiB buffered file (the alternative the design considered).
func BenchmarkReadFile(b *testing.B) {
	pcapPath, ngPath := benchFiles(b)
	for _, tc := range []struct{ name, path string }{{"pcap", pcapPath}, {"pcapng", ngPath}} {
		b.Run(tc.name+"/ours", func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				r, err := OpenFile(tc.path)
				if err != nil {
					b.Fatal(err)
				}
				for {
					data, _, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
					_ = data
				}
				r.Close()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(n), "ns/pkt")
		})
		b.Run(tc.name+"/pcapgo", func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.Open(tc.path)
				if err != nil {
					b.Fatal(err)
				}
				br := bufio.NewReaderSize(f, bufSize)
				var next func() error
				if tc.name == "pcap" {
					r, err := pcapgo.NewReader(br)
					if err != nil {
						b.Fatal(err)
					}
					next = func() error { _, _, err := r.ZeroCopyReadPacketData(); return err }
				} else {
					r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
					if err != nil {
						b.Fatal(err)
					}
					next = func() error { _, _, err := r.ZeroCopyReadPacketData(); return err }
				}
				for {
					err := next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				f.Close()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(n), "ns/pkt")
		})
	}
}

// BenchmarkReadMemory is BenchmarkReadFile without the file system: both readers parse the same
// bytes from memory, which isolates the parsing cost from read(2).
func BenchmarkReadMemory(b *testing.B) {
	pcapPath, ngPath := benchFiles(b)
	for _, tc := range []struct{ name, path string }{{"pcap", pcapPath}, {"pcapng", ngPath}} {
		raw, err := os.ReadFile(tc.path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name+"/ours", func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(raw), tc.name)
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, _, err := r.Next(); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
					n++
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(n), "ns/pkt")
		})
		b.Run(tc.name+"/pcapgo", func(b *testing.B) {
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				var next func() error
				if tc.name == "pcap" {
					r, err := pcapgo.NewReader(bytes.NewReader(raw))
					if err != nil {
						b.Fatal(err)
					}
					next = func() error { _, _, err := r.ZeroCopyReadPacketData(); return err }
				} else {
					r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.NgReaderOptions{WantMixedLinkType: true})
					if err != nil {
						b.Fatal(err)
					}
					next = func() error { _, _, err := r.ZeroCopyReadPacketData(); return err }
				}
				for {
					if err := next(); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
					n++
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(n), "ns/pkt")
		})
	}
}
