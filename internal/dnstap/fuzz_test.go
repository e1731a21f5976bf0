package dnstap

import (
	"bytes"
	"errors"
	"google.golang.org/protobuf/encoding/protowire"
	"io"
	"testing"

	oracle "github.com/dnstap/golang-dnstap"
	"google.golang.org/protobuf/proto"
)

// FuzzReader feeds arbitrary bytes to the unidirectional and bidirectional readers: no panic,
// frames within the bound and within the input, and errors from the documented set.
func FuzzReader(f *testing.F) {
	f.Add(theirFile(f, testFrames(f, 3)))
	f.Add(cat(ctrl(controlReady, ContentType), ctrl(controlStart, ContentType), dataFrame([]byte("abc")), ctrl(controlStop)))
	f.Add(cat(ctrl(controlStart), dataFrame(make([]byte, 70))))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 99})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, bidir := range []bool{false, true} {
			rd := NewReader(bytes.NewReader(in), io.Discard, ReaderOptions{MaxFrameSize: 64, Bidirectional: bidir})
			total := 0
			for {
				fr, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFrameTooLarge) &&
						!errors.Is(err, ErrControlFrame) && !errors.Is(err, ErrUnexpectedControl) &&
						!errors.Is(err, ErrContentType) {
						t.Fatalf("undocumented error %v", err)
					}
					break
				}
				if len(fr) == 0 || len(fr) > 64 {
					t.Fatalf("frame of %d bytes", len(fr))
				}
				total += 4 + len(fr)
				if total > len(in) {
					t.Fatalf("returned %d bytes from %d", total, len(in))
				}
			}
			if len(rd.buf) > max(minBufSize, 64+8) {
				t.Fatalf("buffer grew to %d", len(rd.buf))
			}
		}
	})
}

// knownEnums reports whether every enum ours decoded is one golang-dnstap v0.4.0 knows:
// proto2 enums are closed, so protobuf-go files other values as unknown fields.
func knownEnums(d *Dnstap) bool {
	m := &d.Message
	return d.Type == TypeMessage && m.Type >= 1 && m.Type <= 14 &&
		m.SocketFamily >= 1 && m.SocketFamily <= 2 && m.SocketProtocol >= 1 && m.SocketProtocol <= 4
}

// FuzzUnmarshal checks the decoder differentially against golang-dnstap's generated code.
func FuzzUnmarshal(f *testing.F) {
	for i := range 4 {
		f.Add(mustMarshal(f, oracleMessage(i)))
	}
	f.Add([]byte{0x78, 0x01, 0x72, 0x02, 0x08, 0x05})
	f.Add([]byte{0x0a, 0x05, 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Dnstap
		err := d.Unmarshal(in)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRequiredMissing) {
			t.Fatalf("undocumented error %v", err)
		}
		if !knownEnums(&d) || hasNewerFields(in) {
			return
		}
		var o oracle.Dnstap
		oerr := proto.Unmarshal(in, &o)
		if (err == nil) != (oerr == nil) {
			t.Fatalf("ours %v, oracle %v", err, oerr)
		}
		if err == nil {
			compareOracle(t, &d, &o)
		}
	})
}

// realisticFile is an in-memory dnstap file of n realistic messages.
func realisticFile(b testing.TB, n int) []byte {
	return theirFile(b, testFrames(b, n))
}

// BenchmarkFileDecode reads and decodes an in-memory file; one op is one message.
func BenchmarkFileDecode(b *testing.B) {
	const n = 10000
	file := realisticFile(b, n)
	br := bytes.NewReader(file)
	rd := NewReader(br, nil, ReaderOptions{})
	var d Dnstap
	b.SetBytes(int64(len(file) / n))
	b.ReportAllocs()
	b.ResetTimer()
	count := 0
	for count < b.N {
		br.Reset(file)
		rd.Reset(br, nil)
		for count < b.N {
			f, err := rd.Next()
			if err != nil {
				break
			}
			if d.Unmarshal(f) != nil || !d.IsMessage() {
				b.Fatal("bad message")
			}
			count++
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mmsg/s")
}

func BenchmarkUnmarshal(b *testing.B) {
	frame := mustMarshal(b, oracleMessage(6))
	var d Dnstap
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if d.Unmarshal(frame) != nil {
			b.Fatal("bad")
		}
	}
}

// BenchmarkOracleUnmarshal is golang-dnstap's generated code on the same frame, for scale.
func BenchmarkOracleUnmarshal(b *testing.B) {
	frame := mustMarshal(b, oracleMessage(6))
	b.ReportAllocs()
	for b.Loop() {
		var o oracle.Dnstap
		if proto.Unmarshal(frame, &o) != nil {
			b.Fatal("bad")
		}
	}
}

// hasNewerFields reports a Message with policy (15) or http_protocol (16), fields newer than
// the oracle's dnstap.proto: it keeps them as unknown bytes and never validates their
// contents, where we decode (and may reject) them.
func hasNewerFields(in []byte) bool {
	for b := in; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == 14 && typ == protowire.BytesType {
			msg, _ := protowire.ConsumeBytes(b)
			for len(msg) > 0 {
				mnum, mtyp, mn := protowire.ConsumeTag(msg)
				if mn < 0 {
					break
				}
				if mnum == 15 || mnum == 16 {
					return true
				}
				msg = msg[mn:]
				if mn = protowire.ConsumeFieldValue(mnum, mtyp, msg); mn < 0 {
					break
				}
				msg = msg[mn:]
			}
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return false
}
