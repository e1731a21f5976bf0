package stream

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"google.golang.org/protobuf/encoding/protowire"
)

// tapMessage encodes a dnstap MESSAGE by hand (protobuf wire format, dnstap.proto numbers).
func tapMessage(typ dnstap.MessageType, qport uint32, id uint16, sec uint64) []byte {
	dnsMsg := []byte{byte(id >> 8), byte(id), 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	msgField := uint64(10) // query_message
	timeSec := uint64(8)   // query_time_sec
	if typ.IsResponse() {
		dnsMsg[2] = 0x80
		msgField, timeSec = 14, 12
	}
	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(typ))
	m = protowire.AppendTag(m, 2, protowire.VarintType)
	m = protowire.AppendVarint(m, 1) // INET
	m = protowire.AppendTag(m, 3, protowire.VarintType)
	m = protowire.AppendVarint(m, 1) // UDP
	m = protowire.AppendTag(m, 4, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte{10, 0, byte(qport >> 8), byte(qport)})
	m = protowire.AppendTag(m, 5, protowire.BytesType)
	m = protowire.AppendBytes(m, []byte{10, 9, 9, 9})
	m = protowire.AppendTag(m, 6, protowire.VarintType)
	m = protowire.AppendVarint(m, uint64(qport))
	m = protowire.AppendTag(m, 7, protowire.VarintType)
	m = protowire.AppendVarint(m, 53)
	m = protowire.AppendTag(m, protowire.Number(timeSec), protowire.VarintType)
	m = protowire.AppendVarint(m, sec)
	m = protowire.AppendTag(m, protowire.Number(msgField), protowire.BytesType)
	m = protowire.AppendBytes(m, dnsMsg)
	var d []byte
	d = protowire.AppendTag(d, 15, protowire.VarintType)
	d = protowire.AppendVarint(d, 1) // MESSAGE
	d = protowire.AppendTag(d, 14, protowire.BytesType)
	return protowire.AppendBytes(d, m)
}

// tapFrames is a query/response stream over many clients, one second per 1000 messages.
func tapFrames(n int) [][]byte {
	var out [][]byte
	for i := range n / 2 {
		sec := 1_700_000_000 + uint64(i/500)
		out = append(out, tapMessage(dnstap.ClientQuery, uint32(1024+i%20000), uint16(i), sec),
			tapMessage(dnstap.ClientResponse, uint32(1024+i%20000), uint16(i), sec))
	}
	return out
}

type frameList struct {
	frames [][]byte
	i      int
}

func (f *frameList) Next() ([]byte, error) {
	if f.i == len(f.frames) {
		f.i = 0
	}
	f.i++
	return f.frames[f.i-1], nil
}

func TestDnstapDirection(t *testing.T) {
	in := []dnstap.MessageType{dnstap.ClientQuery, dnstap.StubResponse, dnstap.ResolverResponse, dnstap.AuthQuery,
		dnstap.ForwarderResponse, dnstap.UpdateQuery, dnstap.ToolResponse}
	out := []dnstap.MessageType{dnstap.StubQuery, dnstap.ClientResponse, dnstap.ResolverQuery, dnstap.AuthResponse,
		dnstap.ForwarderQuery, dnstap.UpdateResponse, dnstap.ToolQuery}
	for _, tc := range []struct {
		types []dnstap.MessageType
		want  hostspec.Direction
	}{{in, hostspec.ToHost}, {out, hostspec.FromHost}, {[]dnstap.MessageType{0, 15, -1}, hostspec.Unknown}} {
		for _, typ := range tc.types {
			if got := DnstapDirection(typ); got != tc.want {
				t.Errorf("%v: %v, want %v", typ, got, tc.want)
			}
		}
	}
}

func TestDnstapFlowHashPairs(t *testing.T) {
	var q, r dnstap.Dnstap
	if err := q.Unmarshal(tapMessage(dnstap.ClientQuery, 4000, 7, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Unmarshal(tapMessage(dnstap.ClientResponse, 4000, 7, 1)); err != nil {
		t.Fatal(err)
	}
	if dnstapFlowHash(q.Message.QueryAddress, q.Message.QueryPort) != dnstapFlowHash(r.Message.QueryAddress, r.Message.QueryPort) {
		t.Error("a query and its response hash differently")
	}
	if dnstapFlowHash([]byte{10, 0, 0, 1}, 4000) == dnstapFlowHash([]byte{10, 0, 0, 1}, 4001) {
		t.Error("ports do not change the hash")
	}
}

// TestDnstapAllocs: a dnstap message through net and dns allocates nothing in steady state.
func TestDnstapAllocs(t *testing.T) {
	s := New(Config{Workers: 1}, defaultSpecs(t, 1))
	src := &frameList{frames: tapFrames(20000)}
	for range 40000 { // warm up: tables and sketches reach their size
		f, _ := src.Next()
		s.dnstapFrame(f)
	}
	if a := testing.AllocsPerRun(20000, func() {
		f, _ := src.Next()
		s.dnstapFrame(f)
	}); a != 0 {
		t.Errorf("%v allocs per dnstap message, want 0", a)
	}
}

type limited struct {
	src *frameList
	n   int
}

func (l *limited) Next() ([]byte, error) {
	if l.n == 0 {
		return nil, errEOF
	}
	l.n--
	return l.src.Next()
}

// BenchmarkDnstap reads a generated dnstap file (written with dnstap.Writer) through the
// reader and net+dns handlers: messages/s end to end.
func BenchmarkDnstap(b *testing.B) {
	frames := tapFrames(200000)
	var buf bytes.Buffer
	w, err := dnstap.NewWriter(&buf, dnstap.ContentType)
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 4} {
		b.Run("workers="+string(rune('0'+workers)), func(b *testing.B) {
			b.ReportAllocs()
			msgs := 0
			for b.Loop() {
				s := New(Config{Workers: workers}, defaultSpecs(b, 1))
				if err := s.RunDnstap(context.Background(), dnstap.NewReader(bytes.NewReader(buf.Bytes()), nil, dnstap.ReaderOptions{})); err != nil {
					b.Fatal(err)
				}
				msgs += len(frames)
			}
			b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// FuzzDnstapFrames feeds arbitrary frames through the whole dnstap path (decode, route,
// net and dns handlers, one and several workers): it must never panic.
func FuzzDnstapFrames(f *testing.F) {
	f.Add(tapMessage(dnstap.ClientQuery, 1000, 1, 5), tapMessage(dnstap.ClientResponse, 1000, 1, 6))
	f.Add([]byte{0x08, 0x01, 0x72, 0x00}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, workers := range []int{1, 2} {
			s := New(Config{Workers: workers}, defaultSpecs(t, 2))
			src := &limited{src: &frameList{frames: [][]byte{a, b, append(a[:len(a):len(a)], b...)}}, n: 9}
			if err := s.RunDnstap(context.Background(), src); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Frames != 9 {
				t.Fatalf("frames %d, want 9", st.Frames)
			}
		}
	})
}

var errEOF = io.EOF
