package bpf

import (
	"testing"

	"golang.org/x/net/bpf"
)

var benchExprs = []struct{ name, expr string }{
	{"port53", "port 53"},
	{"udp_dst_port53_host", "udp dst port 53 and host 10.0.0.2"},
	{"dns_query_bit", "udp[10] & 0x80 = 0"},
	{"dns_or_vlan", "udp port 53 and net 10.0.0.0/8 or tcp port 53 or vlan"},
}

// BenchmarkMatch evaluates filters on an Ethernet IPv4 UDP DNS query.
func BenchmarkMatch(b *testing.B) {
	frame := ethFrame(byName(testL3(b), "v4 udp dns query"))
	for _, bc := range benchExprs {
		m, err := NewMatcher(bc.expr, LinkTypeEthernet)
		if err != nil {
			b.Fatal(err)
		}
		if !m.Match(frame) {
			b.Fatalf("%q does not match the DNS query", bc.expr)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				m.Match(frame)
			}
		})
	}
}

// BenchmarkXNetVM is the same work on golang.org/x/net/bpf's VM, for comparison.
func BenchmarkXNetVM(b *testing.B) {
	frame := ethFrame(byName(testL3(b), "v4 udp dns query"))
	for _, bc := range benchExprs {
		raw, err := Compile(bc.expr, LinkTypeEthernet, 0)
		if err != nil {
			b.Fatal(err)
		}
		ins := make([]bpf.Instruction, len(raw))
		for i, r := range raw {
			ins[i] = r.Disassemble()
		}
		v, err := bpf.NewVM(ins)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				v.Run(frame)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(bc.expr, LinkTypeEthernet, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
