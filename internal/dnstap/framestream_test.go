package dnstap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	oracle "github.com/dnstap/golang-dnstap"
	fs "github.com/farsightsec/golang-framestream"
	"google.golang.org/protobuf/proto"
)

var fixtureDir = "/work/shared/testdata/pktvisor"

// theirFile encodes frames as a unidirectional stream with golang-framestream.
func theirFile(t testing.TB, frames [][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := fs.NewWriter(&buf, &fs.WriterOptions{ContentTypes: [][]byte{[]byte(ContentType)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if _, err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testFrames(t testing.TB, n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = mustMarshal(t, oracleMessage(i))
	}
	return frames
}

// readAll drains a Reader, copying frames.
func readAll(rd *Reader) ([][]byte, error) {
	var out [][]byte
	for {
		f, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, append([]byte(nil), f...))
	}
}

func TestReaderTheirFile(t *testing.T) {
	frames := testFrames(t, 500)
	frames = append(frames, bytes.Repeat([]byte{0xAB}, 200_000)) // forces buffer growth
	file := theirFile(t, frames)
	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(file) }},
		{"one byte reads", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(file)) }},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(file)) }},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(file)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(NewReader(tc.r(), nil, ReaderOptions{}))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(frames) {
				t.Fatalf("%d frames, want %d", len(got), len(frames))
			}
			for i := range got {
				if !bytes.Equal(got[i], frames[i]) {
					t.Fatalf("frame %d differs", i)
				}
			}
		})
	}
}

func TestWriterTheirReader(t *testing.T) {
	frames := testFrames(t, 300)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := oracle.NewReader(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, DefaultMaxFrameSize)
	for i := 0; ; i++ {
		n, err := r.ReadFrame(b)
		if err == io.EOF {
			if i != len(frames) {
				t.Fatalf("oracle read %d frames, want %d", i, len(frames))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:n], frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if err := w.WriteFrame(nil); err == nil {
		t.Error("empty frame accepted")
	}
}

// Bidirectional both ways over an in-memory connection: their writer → our reader, and
// our writer → their reader.
func TestBidirectional(t *testing.T) {
	frames := testFrames(t, 100)
	t.Run("their writer", func(t *testing.T) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		errc := make(chan error, 1)
		go func() {
			w, err := fs.NewWriter(c1, &fs.WriterOptions{ContentTypes: [][]byte{[]byte(ContentType)}, Bidirectional: true})
			if err != nil {
				errc <- err
				return
			}
			for _, f := range frames {
				if _, err := w.WriteFrame(f); err != nil {
					errc <- err
					return
				}
			}
			errc <- w.Close() // waits for our FINISH
		}()
		got, err := readAll(NewReader(c2, c2, ReaderOptions{Bidirectional: true}))
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal("writer:", err)
		}
		if len(got) != len(frames) {
			t.Fatalf("%d frames", len(got))
		}
	})
	t.Run("our writer", func(t *testing.T) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		errc := make(chan error, 1)
		go func() {
			w, err := NewBidirectionalWriter(c1, "")
			if err != nil {
				errc <- err
				return
			}
			for _, f := range frames {
				if err := w.WriteFrame(f); err != nil {
					errc <- err
					return
				}
			}
			errc <- w.Close()
		}()
		r, err := fs.NewReader(c2, &fs.ReaderOptions{ContentTypes: [][]byte{[]byte(ContentType)}, Bidirectional: true})
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1<<16)
		n := 0
		for {
			_, err := r.ReadFrame(b)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if err := <-errc; err != nil {
			t.Fatal("writer:", err)
		}
		if n != len(frames) {
			t.Fatalf("%d frames", n)
		}
	})
}

// The ACCEPT we send carries the content type (unbound needs it, DESIGN §7). Expected bytes
// by hand: escape, length 4+8+22=34, type ACCEPT, field CONTENT_TYPE, length 22, the string.
func TestAcceptBytes(t *testing.T) {
	ready := appendControl(nil, controlReady, []byte("other"), []byte(ContentType))
	var out bytes.Buffer
	rd := NewReader(bytes.NewReader(ready), &out, ReaderOptions{Bidirectional: true})
	if _, err := rd.Next(); !errors.Is(err, ErrTruncated) && err != io.EOF {
		t.Fatalf("err %v", err)
	}
	want := []byte{0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 22}
	want = append(want, ContentType...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("ACCEPT % x\nwant   % x", out.Bytes(), want)
	}
}

func ctrl(typ uint32, cts ...string) []byte {
	var b [][]byte
	for _, c := range cts {
		b = append(b, []byte(c))
	}
	return appendControl(nil, typ, b...)
}

func dataFrame(p []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(p))), p...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReaderErrors(t *testing.T) {
	start := ctrl(controlStart, ContentType)
	stop := ctrl(controlStop)
	tests := []struct {
		name    string
		in      []byte
		opts    ReaderOptions
		frames  int
		wantErr error // nil: clean io.EOF
	}{
		{"ok", cat(start, dataFrame([]byte("a")), stop), ReaderOptions{}, 1, nil},
		{"start without content type is trusted", cat(ctrl(controlStart), dataFrame([]byte("a")), stop), ReaderOptions{}, 1, nil},
		{"eof at frame boundary without STOP", cat(start, dataFrame([]byte("a"))), ReaderOptions{}, 1, nil},
		{"bytes after STOP ignored", cat(start, stop, []byte("garbage")), ReaderOptions{}, 0, nil},
		{"empty input", nil, ReaderOptions{}, 0, nil},
		{"wrong content type", cat(ctrl(controlStart, "protobuf:other"), dataFrame([]byte("a"))), ReaderOptions{}, 0, ErrContentType},
		{"custom content type", cat(ctrl(controlStart, "x"), dataFrame([]byte("a")), stop), ReaderOptions{ContentType: "x"}, 1, nil},
		{"oversize frame", cat(start, dataFrame(make([]byte, 101))), ReaderOptions{MaxFrameSize: 100}, 0, ErrFrameTooLarge},
		{"frame at the limit", cat(start, dataFrame(make([]byte, 100)), stop), ReaderOptions{MaxFrameSize: 100}, 1, nil},
		{"truncated data frame", cat(start, dataFrame([]byte("abcdef")))[:len(start)+6], ReaderOptions{}, 0, ErrTruncated},
		{"truncated length", cat(start, []byte{0, 0}), ReaderOptions{}, 0, ErrTruncated},
		{"truncated control frame", start[:10], ReaderOptions{}, 0, ErrTruncated},
		{"control field overruns", cat([]byte{0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 99}), ReaderOptions{}, 0, ErrControlFrame},
		{"control field header cut", cat([]byte{0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 1}), ReaderOptions{}, 0, ErrControlFrame},
		{"control frame too long", cat([]byte{0, 0, 0, 0, 0, 0, 2, 1}), ReaderOptions{}, 0, ErrControlFrame},
		{"control frame too short", cat([]byte{0, 0, 0, 0, 0, 0, 0, 3}), ReaderOptions{}, 0, ErrControlFrame},
		{"data before START", dataFrame([]byte("a")), ReaderOptions{}, 0, ErrUnexpectedControl},
		{"READY in a file", ctrl(controlReady, ContentType), ReaderOptions{}, 0, ErrUnexpectedControl},
		{"second START", cat(start, start), ReaderOptions{}, 0, ErrUnexpectedControl},
		{"FINISH from a sender", cat(start, ctrl(controlFinish)), ReaderOptions{}, 0, ErrUnexpectedControl},
		{"unknown control type", cat(start, ctrl(77)), ReaderOptions{}, 0, ErrUnexpectedControl},
		{"bidir START before READY", start, ReaderOptions{Bidirectional: true}, 0, ErrUnexpectedControl},
		{"bidir READY wrong type", ctrl(controlReady, "text/plain"), ReaderOptions{Bidirectional: true}, 0, ErrContentType},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ReaderOptions{}, 0, ErrUnexpectedControl},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(NewReader(bytes.NewReader(tc.in), io.Discard, tc.opts))
			if tc.wantErr == nil && err != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if len(got) != tc.frames {
				t.Fatalf("%d frames, want %d", len(got), tc.frames)
			}
			// golang-framestream must agree that the well-formed streams are fine.
			if tc.wantErr == nil && tc.opts == (ReaderOptions{}) && len(tc.in) > 0 {
				r, err := fs.NewReader(bytes.NewReader(tc.in), &fs.ReaderOptions{ContentTypes: [][]byte{[]byte(ContentType)}})
				if err != nil {
					t.Fatalf("oracle: %v", err)
				}
				n := 0
				b := make([]byte, 1024)
				for {
					_, err := r.ReadFrame(b)
					if err != nil {
						break
					}
					n++
				}
				if n != tc.frames {
					t.Fatalf("oracle read %d frames", n)
				}
			}
		})
	}
}

// timeoutReader fails every other Read with a timeout error, as a net.Conn with a deadline.
type timeoutReader struct {
	r    io.Reader
	tick bool
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }

func (t *timeoutReader) Read(p []byte) (int, error) {
	t.tick = !t.tick
	if t.tick {
		return 0, timeoutErr{}
	}
	return t.r.Read(p)
}

// Next resumes after an error of the underlying reader, losing nothing.
func TestReaderResumesAfterTimeout(t *testing.T) {
	frames := testFrames(t, 50)
	file := theirFile(t, frames)
	rd := NewReader(&timeoutReader{r: iotest.HalfReader(bytes.NewReader(file))}, nil, ReaderOptions{})
	var got int
	var timeouts int
	for {
		f, err := rd.Next()
		if err == io.EOF {
			break
		}
		var te timeoutErr
		if errors.As(err, &te) {
			timeouts++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f, frames[got]) {
			t.Fatalf("frame %d differs", got)
		}
		got++
	}
	if got != len(frames) || timeouts == 0 {
		t.Fatalf("%d frames, %d timeouts", got, timeouts)
	}
}

func TestReaderReset(t *testing.T) {
	file := theirFile(t, testFrames(t, 10))
	rd := NewReader(bytes.NewReader(file), nil, ReaderOptions{})
	for range 3 {
		got, err := readAll(rd)
		if err != nil || len(got) != 10 {
			t.Fatalf("%d frames, %v", len(got), err)
		}
		rd.Reset(bytes.NewReader(file), nil)
	}
}

func TestReaderNoAllocs(t *testing.T) {
	file := theirFile(t, testFrames(t, 1000))
	rd := NewReader(bytes.NewReader(file), nil, ReaderOptions{})
	br := bytes.NewReader(file)
	var d Dnstap
	allocs := testing.AllocsPerRun(20, func() {
		br.Reset(file)
		rd.Reset(br, nil)
		for {
			f, err := rd.Next()
			if err != nil {
				break
			}
			_ = d.Unmarshal(f)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per file of 1000 messages", allocs)
	}
}

// The real fixture: our reader and decoder against golang-dnstap's reader and generated code,
// frame by frame, and the counts the spec gives (§6.11: 153 messages, 79 CLIENT_QUERY and 74
// CLIENT_RESPONSE; the spec's "154th frame without type" is the truncated tail, which the
// reference parses as a broken protobuf and drops).
func TestFixture(t *testing.T) {
	path := filepath.Join(fixtureDir, "fixture.dnstap")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("fixture absent (%v)", err)
	}
	or, err := oracle.NewReader(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	rd := NewReader(bytes.NewReader(data), nil, ReaderOptions{})
	ob := make([]byte, DefaultMaxFrameSize)
	var d Dnstap
	frames, messages, truncated := 0, 0, false
	types := map[string]int{}
	for {
		f, err := rd.Next()
		n, oerr := or.ReadFrame(ob)
		if (err == io.EOF) != (oerr == io.EOF) {
			t.Fatalf("frame %d: ours %v, oracle %v", frames, err, oerr)
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrTruncated) {
			// The fixture ends inside a 286-byte frame (238 bytes present): both readers
			// must fail there.
			if oerr == nil {
				t.Fatalf("frame %d: ours %v, oracle read it", frames, err)
			}
			truncated = true
			break
		}
		if err != nil || oerr != nil {
			t.Fatal(err, oerr)
		}
		if !bytes.Equal(f, ob[:n]) {
			t.Fatalf("frame %d differs", frames)
		}
		frames++
		derr := d.Unmarshal(f)
		var o oracle.Dnstap
		operr := proto.Unmarshal(f, &o)
		if (derr == nil) != (operr == nil) {
			t.Fatalf("frame %d: ours %v, oracle %v", frames, derr, operr)
		}
		if operr != nil {
			if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(f, &o); err != nil {
				t.Fatal(err)
			}
		}
		compareOracle(t, &d, &o)
		types[d.Message.Type.String()]++
		if derr == nil && d.IsMessage() {
			messages++
			// Spec §6.11 facts, decoded independently of this package.
			m := &d.Message
			if m.SocketFamily != FamilyINET || m.SocketProtocol != ProtocolUDP ||
				!bytes.Equal(m.QueryAddress, []byte{192, 168, 0, 54}) || !bytes.Equal(m.ResponseAddress, []byte{192, 168, 0, 55}) {
				t.Fatalf("frame %d: %v %v %v %v", frames, m.SocketFamily, m.SocketProtocol, m.QueryAddress, m.ResponseAddress)
			}
		}
	}
	if !truncated || frames != 153 || messages != 153 || types["CLIENT_QUERY"] != 79 || types["CLIENT_RESPONSE"] != 74 {
		t.Fatalf("truncated %v frames %d messages %d types %v", truncated, frames, messages, types)
	}
}

func ExampleReader() {
	var file bytes.Buffer
	w, _ := NewWriter(&file, ContentType)
	for i := range 3 {
		frame, _ := proto.Marshal(oracleMessage(4 + i))
		_ = w.WriteFrame(frame)
	}
	_ = w.Close()

	rd := NewReader(&file, nil, ReaderOptions{})
	var d Dnstap
	for {
		frame, err := rd.Next()
		if err != nil {
			break // io.EOF after STOP
		}
		if d.Unmarshal(frame) == nil && d.IsMessage() {
			fmt.Println(d.Message.Type, d.Message.QueryPort)
		}
	}
	// Output:
	// CLIENT_QUERY 1028
	// CLIENT_RESPONSE 1029
	// FORWARDER_QUERY 1030
}
