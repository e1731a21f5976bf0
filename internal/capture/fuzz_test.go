package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

func FuzzFileReader(f *testing.F) {
	frames := testFrames()[:6]
	var recs []rec
	for i, fr := range frames {
		recs = append(recs, rec{sec: uint32(i), frac: 999999, data: fr, wire: uint32(len(fr) + 1)})
	}
	f.Add(pcapFile(binary.LittleEndian, pcapMagicMicro, 1, recs))
	f.Add(pcapFile(binary.BigEndian, pcapMagicNano, 113, recs))
	f.Add(pcapFile(binary.LittleEndian, pcapMagicModified, 101, recs))
	f.Add(gz(f, pcapFile(binary.LittleEndian, pcapMagicMicro, 1, recs[:2])))
	for _, o := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		w := &ngWriter{o: o}
		w.section()
		w.iface(1, 0, -1, 0)
		w.iface(276, 16, 0x80|30, 5)
		w.block(5, make([]byte, 8))
		for i, fr := range frames {
			w.epb(rec{iface: uint32(i % 2), ts: uint64(i) << 30, data: fr})
		}
		w.pb(rec{iface: 1, data: frames[2]})
		w.spb(100, frames[3])
		w.section()
		w.iface(0, 0, 9, 0)
		w.epb(rec{data: frames[4]})
		f.Add(w.b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), "fuzz")
		if err != nil {
			checkKind(t, err)
			return
		}
		defer r.Close()
		for n := 0; ; n++ {
			data, info, err := r.Next()
			if err != nil {
				if err != io.EOF {
					checkKind(t, err)
				}
				if _, _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
				return
			}
			if len(data) != info.CapLen || info.CapLen > MaxCapLen || info.WireLen < info.CapLen || !info.Link.Supported() {
				t.Fatalf("record %d: %d bytes, info %+v", n, len(data), info)
			}
			// A record cannot hold more than the input (gzip aside, which expands).
			if len(b) > 2 && b[0] != 0x1f && len(data) > len(b) {
				t.Fatalf("record of %d bytes from %d bytes of input", len(data), len(b))
			}
		}
	})
}

func checkKind(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotCapture) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, decode.ErrUnsupportedLink) {
		t.Fatalf("error of unknown kind: %v", err)
	}
}
