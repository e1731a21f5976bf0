package decode

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"
)

// fuzzLinks maps the fuzzer's link selector to a link type: every supported one plus an
// unsupported one.
var fuzzLinks = []LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkNull, LinkLoop, LinkRaw, LinkDLTRaw12,
	LinkDLTRaw14, LinkIPv4, LinkIPv6, 147}

// within reports whether sub lies inside frame's memory (Packet slices must point into the frame).
func within(sub, frame []byte) bool {
	if len(sub) == 0 {
		return true
	}
	if len(frame) == 0 {
		return false
	}
	s, f := uintptr(unsafe.Pointer(unsafe.SliceData(sub))), uintptr(unsafe.Pointer(unsafe.SliceData(frame)))
	return s >= f && s+uintptr(len(sub)) <= f+uintptr(len(frame))
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases(f) {
		for i, lt := range fuzzLinks {
			if lt == tc.lt {
				f.Add(uint8(i), tc.frame)
			}
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, frame []byte) {
		lt := fuzzLinks[int(sel)%len(fuzzLinks)]
		var d Decoder
		var p Packet
		err := d.Decode(lt, frame, &p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedLink) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if errors.Is(err, ErrUnsupportedLink) != !lt.Supported() {
				t.Fatalf("link %v: %v", lt, err)
			}
			return
		}
		if p.CapLen != len(frame) || p.WireLen != len(frame) {
			t.Fatalf("lengths %d/%d for %d bytes", p.CapLen, p.WireLen, len(frame))
		}
		if !within(p.Payload, frame) || !within(p.FragData, frame) {
			t.Fatal("slice outside the frame")
		}
		if p.L3 == L3None && (p.L4 != L4Other || p.Fragment || len(p.Payload) != 0 || p.SrcPort != 0) {
			t.Fatalf("non-IP packet with IP fields: %+v", p)
		}
		if p.L3 == L3IPv4 && ([12]byte(p.Src[4:]) != [12]byte{} || [12]byte(p.Dst[4:]) != [12]byte{}) {
			t.Fatal("IPv4 address tail not zero")
		}
		if p.L4 != L4Other && p.L4 != l4Of(p.IPProto) {
			t.Fatalf("L4 %v for protocol %d", p.L4, p.IPProto)
		}
		if !p.Fragment && (p.FragOffset != 0 || p.FragMore || len(p.FragData) != 0) {
			t.Fatal("fragment fields on a whole packet")
		}
		if p.Fragment && p.FragOffset == 0 && !p.FragMore {
			t.Fatal("atomic fragment reported as a fragment")
		}
		// Decoding is a pure function of the frame.
		var q Packet
		if err := d.Decode(lt, frame, &q); err != nil || q.L3 != p.L3 || q.SrcPort != p.SrcPort || !bytes.Equal(q.Payload, p.Payload) {
			t.Fatal("decode is not deterministic")
		}
	})
}

// FuzzDefrag feeds the Defragmenter a sequence of fragments described by the input, all cut from
// one original UDP datagram (so their bytes agree wherever they overlap). Whatever the order,
// overlaps, duplicates, bad lengths or evictions, a reassembled payload must be a prefix of the
// original's, the memory cap must hold and the counters must balance.
func FuzzDefrag(f *testing.F) {
	// Each op is 4 bytes: flags (bit0 more, bit1-2 key, bit3 raw length, bit4 truncated),
	// offset/8, length (/8 unless raw), timestamp step in seconds.
	f.Add([]byte{1, 0, 4, 0, 0, 4, 4, 0})                       // [0,32) more, [32,64) last
	f.Add([]byte{0, 4, 4, 0, 1, 0, 4, 0})                       // reverse order
	f.Add([]byte{1, 0, 4, 0, 1, 0, 4, 0, 0, 4, 4, 0})           // duplicate
	f.Add([]byte{1, 0, 4, 0, 1, 2, 4, 0, 0, 6, 4, 0})           // overlap
	f.Add([]byte{1, 0, 4, 0, 3, 0, 4, 0, 2, 4, 4, 0, 0, 4, 4})  // two keys interleaved
	f.Add([]byte{1, 0, 4, 0, 0, 4, 4, 40})                      // timeout between fragments
	f.Add([]byte{9, 0, 5, 0, 0, 1, 4, 0})                       // middle fragment of odd length
	f.Add([]byte{17, 0, 4, 0, 0, 4, 4, 0})                      // truncated fragment
	f.Add([]byte{1, 0, 255, 0, 1, 255, 255, 0, 0, 254, 255, 0}) // big

	orig := make([]byte, 255*8*2+8)
	copy(orig, []byte{0, 53, 0x14, 0xe9, byte(len(orig) >> 8), byte(len(orig)), 0, 0})
	for i := 8; i < len(orig); i++ {
		orig[i] = byte(i * 7)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := DefragConfig{MaxDatagrams: 3, MaxBytes: 8192, MaxFragments: 8}
		df := NewDefragmenter(cfg)
		var out Packet
		var ts int64
		completed := uint64(0)
		for len(ops) >= 4 {
			fl, off, ln, step := ops[0], int(ops[1])*8, int(ops[2]), ops[3]
			ops = ops[4:]
			if fl&8 == 0 {
				ln *= 8
			}
			end := min(off+ln, len(orig))
			ts += int64(step) * 1e9
			p := Packet{TS: ts, Fragment: true, FragMore: fl&1 != 0, FragOffset: uint16(off), FragProto: 17,
				FragID: uint32(fl>>1) & 3, FragData: orig[off:end], Truncated: fl&16 != 0}
			p.L3 = L3IPv4
			if fl&4 != 0 {
				p.L3 = L3IPv6
			}
			p.Src[0], p.Dst[0] = 10, 11
			if df.Add(&p, &out) {
				completed++
				if out.Fragment || out.L4 != L4UDP || out.SrcPort != 53 || out.DstPort != 5353 {
					t.Fatalf("bad reassembled header %+v", out)
				}
				if !bytes.Equal(out.Payload, orig[8:8+len(out.Payload)]) {
					t.Fatal("reassembled payload differs from the original")
				}
			}
			s := df.Stats()
			if s.BufferedBytes > cfg.MaxBytes || s.InProgress > cfg.MaxDatagrams || s.InProgress < 0 {
				t.Fatalf("bounds broken: %+v", s)
			}
		}
		if s := df.Stats(); s.Completed != completed {
			t.Fatalf("Completed %d, saw %d", s.Completed, completed)
		}
	})
}
