package bpf

import (
	"errors"
	"sync"
	"testing"

	"golang.org/x/net/bpf"
)

var fuzzLinkTypes = []uint32{LinkTypeEthernet, LinkTypeLinuxSLL, LinkTypeSLL2, LinkTypeRaw,
	LinkTypeNull, LinkTypeLoop, LinkTypeIPv4, LinkTypeIPv6}

var (
	fuzzFramesOnce sync.Once
	fuzzFrames     map[uint32][]frame
)

func framesFor(t testing.TB, lt uint32) []frame {
	fuzzFramesOnce.Do(func() {
		fuzzFrames = map[uint32][]frame{}
		for _, c := range generatedCaptures(t) {
			fuzzFrames[c.linkType] = c.frames
		}
	})
	return fuzzFrames[lt]
}

// FuzzCompile: any expression either fails to compile or yields a program that x/net/bpf and
// the kernel's size limit accept, on which both interpreters agree, and whose optimization
// changed no result except by dropping a load that would have failed.
func FuzzCompile(f *testing.F) {
	for i, e := range oracleExprs {
		f.Add(e, uint8(i))
	}
	for _, e := range oracleErrorExprs {
		f.Add(e, uint8(0))
	}
	f.Fuzz(func(t *testing.T, expr string, sel uint8) {
		if len(expr) > 4096 {
			// Long expressions compile slowly (quadratic optimizer passes; a 64 KiB one takes
			// over a second) and only repeat what short ones reach.
			return
		}
		lt := fuzzLinkTypes[int(sel)%len(fuzzLinkTypes)]
		raw, err := Compile(expr, lt, 0)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) && !errors.Is(err, ErrRejectsAll) && len(err.Error()) == 0 {
				t.Fatalf("empty error for %q", expr)
			}
			return
		}
		if len(raw) == 0 || len(raw) > MaxInstructions {
			t.Fatalf("%q: %d instructions", expr, len(raw))
		}
		ins := make([]bpf.Instruction, len(raw))
		for i, r := range raw {
			ins[i] = r.Disassemble()
		}
		xv, err := bpf.NewVM(ins)
		if err != nil {
			t.Fatalf("%q: x/net/bpf refuses the program: %v", expr, err)
		}
		v, err := newVM(raw)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		frames := framesFor(t, lt)
		for i, fr := range frames {
			want, err := xv.Run(fr.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.run(fr.data, uint32(len(fr.data))); got != uint32(want) {
				t.Fatalf("%q frame %d: ours %d, x/net/bpf %d", expr, i, got, want)
			}
		}
		checkOptimizer(t, expr, lt, frames)
	})
}

var (
	fuzzMatchersOnce sync.Once
	fuzzMatchers     []fuzzMatcher
)

type fuzzMatcher struct {
	m  *Matcher
	xv *bpf.VM
}

var fuzzMatchExprs = []string{
	"port 53", "vlan and udp port 53", "host 10.0.0.1 or net 2001:db8::/32", "tcp[tcpflags] & tcp-syn != 0",
	"ip[(ip[0] & 0xf) * 4 + 2 : 2] = 53", "icmp6 or arp or ip multicast", "less 100 or greater 1000",
	"udp[10] & 0x80 = 0 and not ip[6:2] & 0x1fff != 0", "ether[12:2] / (ip[0] & 3) > 1",
}

// FuzzMatch runs arbitrary frames through a set of programs: no panic, and the same answer as
// x/net/bpf's VM.
func FuzzMatch(f *testing.F) {
	for _, c := range generatedCaptures(f) {
		for i, fr := range c.frames {
			if i%3 == 0 {
				f.Add(fr.data, uint8(i))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		fuzzMatchersOnce.Do(func() {
			for _, lt := range fuzzLinkTypes {
				for _, e := range fuzzMatchExprs {
					raw, err := Compile(e, lt, 0)
					if err != nil {
						continue
					}
					m, err := NewMatcher(e, lt)
					if err != nil {
						t.Fatal(err)
					}
					ins := make([]bpf.Instruction, len(raw))
					for i, r := range raw {
						ins[i] = r.Disassemble()
					}
					xv, err := bpf.NewVM(ins)
					if err != nil {
						t.Fatal(err)
					}
					fuzzMatchers = append(fuzzMatchers, fuzzMatcher{m, xv})
				}
			}
		})
		fm := fuzzMatchers[int(sel)%len(fuzzMatchers)]
		want, err := fm.xv.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := fm.m.Match(data); got != (want != 0) {
			t.Fatalf("%q on % x: ours %v, x/net/bpf %d", fm.m.Expr(), data, got, want)
		}
		fm.m.MatchWire(data, len(data)+int(sel))
	})
}
