package dnstap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ContentType is the Frame Streams content type dnstap senders announce.
const ContentType = "protobuf:dnstap.Dnstap"

const (
	// DefaultMaxFrameSize bounds a data frame, as fstrm's reader default (1 MiB) and
	// golang-framestream's DEFAULT_MAX_PAYLOAD_SIZE do.
	DefaultMaxFrameSize = 1 << 20
	// MaxControlFrameSize bounds a control frame (fstrm's FSTRM_CONTROL_FRAME_LENGTH_MAX).
	MaxControlFrameSize = 512
	// minBufSize is the read buffer a Reader starts with: large enough that a file is read in
	// few syscalls, small enough that many idle connections cost little.
	minBufSize = 64 << 10
)

// Control frame types and the one control field type (Frame Streams protocol).
const (
	controlAccept = 0x01
	controlStart  = 0x02
	controlStop   = 0x03
	controlReady  = 0x04
	controlFinish = 0x05

	fieldContentType = 0x01
)

// Errors returned (wrapped) by Reader and Writer; test with errors.Is.
var (
	// ErrContentType: the peer announced content types, none of them the one expected.
	ErrContentType = errors.New("frame streams: content type mismatch")
	// ErrFrameTooLarge: a data frame's length exceeds the reader's maximum.
	ErrFrameTooLarge = errors.New("frame streams: frame too large")
	// ErrTruncated: the stream ended inside a frame (also wraps io.ErrUnexpectedEOF).
	ErrTruncated = errors.New("frame streams: truncated frame")
	// ErrControlFrame: a control frame is too short, too long or its fields overrun it.
	ErrControlFrame = errors.New("frame streams: malformed control frame")
	// ErrUnexpectedControl: a control frame of a type not allowed in the current state.
	ErrUnexpectedControl = errors.New("frame streams: unexpected control frame")
)

// ReaderOptions configure a Reader. The zero value reads a unidirectional (file) stream of
// dnstap with the default frame size bound.
type ReaderOptions struct {
	// ContentType expected from the sender; "" means ContentType (dnstap).
	ContentType string
	// MaxFrameSize bounds data frames; <= 0 means DefaultMaxFrameSize.
	MaxFrameSize int
	// Bidirectional makes the Reader answer READY with ACCEPT and STOP with FINISH on the
	// writer given to NewReader (sockets). Files are unidirectional.
	Bidirectional bool
}

type readerState uint8

const (
	stateReady    readerState = iota // bidirectional: waiting for READY
	stateAccepted                    // waiting for START
	stateRunning                     // data frames until STOP
	stateStopped                     // STOP seen: io.EOF from now on
)

// Reader decodes one Frame Streams stream. It owns one buffer, grown only up to
// MaxFrameSize+8 bytes, and returns data frames that alias it.
//
// Next is restartable: a read error (a deadline, say) leaves the partial frame buffered, and
// the next call resumes where the stream stopped. Not safe for concurrent use.
type Reader struct {
	r           io.Reader
	w           io.Writer // nil when unidirectional
	contentType []byte
	maxFrame    int
	buf         []byte
	start, end  int // unread bytes are buf[start:end]
	state       readerState
	bidir       bool
	sawEOF      bool
	accept      []byte // the ACCEPT frame, built once
}

// NewReader returns a Reader over r. For a bidirectional stream, w receives the ACCEPT and
// FINISH control frames (a net.Conn is both r and w); w is ignored otherwise.
func NewReader(r io.Reader, w io.Writer, opts ReaderOptions) *Reader {
	ct := opts.ContentType
	if ct == "" {
		ct = ContentType
	}
	maxFrame := opts.MaxFrameSize
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	rd := &Reader{r: r, contentType: []byte(ct), maxFrame: maxFrame, state: stateAccepted}
	if opts.Bidirectional {
		rd.w, rd.bidir, rd.state = w, true, stateReady
	}
	return rd
}

// Reset makes the Reader read a new stream from r (and w), keeping its buffer.
func (rd *Reader) Reset(r io.Reader, w io.Writer) {
	rd.r = r
	rd.start, rd.end = 0, 0
	rd.sawEOF = false
	rd.state = stateAccepted
	if rd.bidir {
		rd.w, rd.state = w, stateReady
	}
}

// Running reports whether the handshake is done (START seen) and STOP is not.
func (rd *Reader) Running() bool { return rd.state == stateRunning }

// Next returns the next data frame, valid until the next call to Next or Reset. It handles
// the control frames itself (handshake, STOP → FINISH) and returns io.EOF after STOP, or when
// the stream ends at a frame boundary. Errors other than those of the underlying reader wrap
// one of the Err* sentinels.
func (rd *Reader) Next() ([]byte, error) {
	for {
		if rd.state == stateStopped {
			return nil, io.EOF
		}
		if err := rd.fill(4); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(rd.buf[rd.start:])
		if n != 0 {
			if rd.state != stateRunning {
				return nil, fmt.Errorf("%w: data frame before START", ErrUnexpectedControl)
			}
			if uint64(n) > uint64(rd.maxFrame) {
				return nil, fmt.Errorf("%w: %d bytes > %d", ErrFrameTooLarge, n, rd.maxFrame)
			}
			if err := rd.fill(4 + int(n)); err != nil {
				return nil, err
			}
			f := rd.buf[rd.start+4 : rd.start+4+int(n) : rd.start+4+int(n)]
			rd.start += 4 + int(n)
			return f, nil
		}
		// Control frame: escape (0), length, then type and fields.
		if err := rd.fill(8); err != nil {
			return nil, err
		}
		cl := binary.BigEndian.Uint32(rd.buf[rd.start+4:])
		if cl < 4 || cl > MaxControlFrameSize {
			return nil, fmt.Errorf("%w: length %d", ErrControlFrame, cl)
		}
		if err := rd.fill(8 + int(cl)); err != nil {
			return nil, err
		}
		ctrl := rd.buf[rd.start+8 : rd.start+8+int(cl)]
		if err := rd.control(ctrl); err != nil {
			return nil, err
		}
		// Consume only once handled, so that a failed FINISH/ACCEPT write can be retried.
		rd.start += 8 + int(cl)
	}
}

// control handles one complete control frame (type + fields).
func (rd *Reader) control(ctrl []byte) error {
	typ := binary.BigEndian.Uint32(ctrl)
	match, err := matchContentType(ctrl[4:], rd.contentType)
	if err != nil {
		return err
	}
	switch {
	case typ == controlReady && rd.state == stateReady:
		if !match {
			return fmt.Errorf("%w: READY does not offer %q", ErrContentType, rd.contentType)
		}
		if rd.accept == nil {
			// unbound hangs up on an ACCEPT without the content type (DESIGN §7).
			rd.accept = appendControl(nil, controlAccept, rd.contentType)
		}
		if _, err := rd.w.Write(rd.accept); err != nil {
			return fmt.Errorf("frame streams: writing ACCEPT: %w", err)
		}
		rd.state = stateAccepted
	case typ == controlStart && rd.state == stateAccepted:
		if !match {
			return fmt.Errorf("%w: START is not %q", ErrContentType, rd.contentType)
		}
		rd.state = stateRunning
	case typ == controlStop && rd.state == stateRunning:
		if rd.w != nil {
			if _, err := rd.w.Write(finishFrame[:]); err != nil {
				return fmt.Errorf("frame streams: writing FINISH: %w", err)
			}
		}
		rd.state = stateStopped
	default:
		return fmt.Errorf("%w: type %d in state %d", ErrUnexpectedControl, typ, rd.state)
	}
	return nil
}

var finishFrame = [12]byte{0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, controlFinish}

// matchContentType walks the control fields, checking that each is well formed, and reports
// whether want is among the content types. A frame without any content type matches, as in
// fstrm (a sender that does not negotiate is trusted).
func matchContentType(fields, want []byte) (bool, error) {
	seen, match := false, false
	for len(fields) > 0 {
		if len(fields) < 8 {
			return false, fmt.Errorf("%w: truncated field header", ErrControlFrame)
		}
		ft := binary.BigEndian.Uint32(fields)
		fl := binary.BigEndian.Uint32(fields[4:])
		if uint64(fl) > uint64(len(fields)-8) {
			return false, fmt.Errorf("%w: field of %d bytes overruns frame", ErrControlFrame, fl)
		}
		v := fields[8 : 8+fl]
		fields = fields[8+fl:]
		if ft == fieldContentType {
			seen = true
			if bytes.Equal(v, want) {
				match = true
			}
		}
	}
	return match || !seen, nil
}

// fill makes at least n bytes available at buf[start:], compacting or growing the buffer.
// n never exceeds maxFrame+8 (callers check lengths first), which bounds the buffer.
func (rd *Reader) fill(n int) error {
	for rd.end-rd.start < n {
		if rd.sawEOF {
			if rd.end == rd.start {
				return io.EOF
			}
			return fmt.Errorf("%w: %d of %d bytes: %w", ErrTruncated, rd.end-rd.start, n, io.ErrUnexpectedEOF)
		}
		if len(rd.buf)-rd.start < n {
			if n > len(rd.buf) {
				size := max(minBufSize, 2*len(rd.buf))
				for size < n {
					size *= 2
				}
				size = min(size, rd.maxFrame+8)
				nb := make([]byte, max(size, n))
				rd.end = copy(nb, rd.buf[rd.start:rd.end])
				rd.buf = nb
			} else {
				rd.end = copy(rd.buf, rd.buf[rd.start:rd.end])
			}
			rd.start = 0
		}
		m, err := rd.r.Read(rd.buf[rd.end:])
		rd.end += m
		if err == io.EOF {
			rd.sawEOF = true
			continue
		}
		if err != nil {
			if rd.end-rd.start >= n {
				return nil
			}
			return err
		}
	}
	return nil
}

// appendControl appends a control frame (with escape and length) of type typ carrying the
// given content types.
func appendControl(dst []byte, typ uint32, contentTypes ...[]byte) []byte {
	l := 4
	for _, ct := range contentTypes {
		l += 8 + len(ct)
	}
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(l))
	dst = binary.BigEndian.AppendUint32(dst, typ)
	for _, ct := range contentTypes {
		dst = binary.BigEndian.AppendUint32(dst, fieldContentType)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(ct)))
		dst = append(dst, ct...)
	}
	return dst
}

// Writer encodes a Frame Streams stream: START (after READY/ACCEPT when bidirectional), data
// frames, then STOP (and waits for FINISH when bidirectional) on Close. Frames are buffered;
// Flush pushes them out.
type Writer struct {
	bw          *bufio.Writer
	r           io.Reader // bidirectional only
	contentType []byte
	hdr         [4]byte
}

// NewWriter starts a unidirectional stream (a file) of the given content type ("" means
// ContentType) on w.
func NewWriter(w io.Writer, contentType string) (*Writer, error) {
	return newWriter(w, nil, contentType)
}

// NewBidirectionalWriter does the sender side of the handshake on rw (READY, wait for an
// ACCEPT offering contentType, START).
func NewBidirectionalWriter(rw io.ReadWriter, contentType string) (*Writer, error) {
	return newWriter(rw, rw, contentType)
}

func newWriter(w io.Writer, r io.Reader, contentType string) (*Writer, error) {
	if contentType == "" {
		contentType = ContentType
	}
	wr := &Writer{bw: bufio.NewWriterSize(w, 64<<10), r: r, contentType: []byte(contentType)}
	if r != nil {
		if _, err := w.Write(appendControl(nil, controlReady, wr.contentType)); err != nil {
			return nil, fmt.Errorf("frame streams: writing READY: %w", err)
		}
		typ, fields, err := readControl(r)
		if err != nil {
			return nil, fmt.Errorf("frame streams: reading ACCEPT: %w", err)
		}
		if typ != controlAccept {
			return nil, fmt.Errorf("%w: got type %d, want ACCEPT", ErrUnexpectedControl, typ)
		}
		ok, err := matchContentType(fields, wr.contentType)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: ACCEPT does not offer %q", ErrContentType, contentType)
		}
	}
	if _, err := wr.bw.Write(appendControl(nil, controlStart, wr.contentType)); err != nil {
		return nil, fmt.Errorf("frame streams: writing START: %w", err)
	}
	return wr, nil
}

// readControl reads one control frame (escape, length, type, fields) from r.
func readControl(r io.Reader) (typ uint32, fields []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	if binary.BigEndian.Uint32(hdr[:]) != 0 {
		return 0, nil, fmt.Errorf("%w: data frame where a control frame was expected", ErrUnexpectedControl)
	}
	l := binary.BigEndian.Uint32(hdr[4:])
	if l < 4 || l > MaxControlFrameSize {
		return 0, nil, fmt.Errorf("%w: length %d", ErrControlFrame, l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return binary.BigEndian.Uint32(b), b[4:], nil
}

// WriteFrame writes one data frame. An empty frame cannot be represented (length 0 is the
// control escape) and is rejected.
func (wr *Writer) WriteFrame(p []byte) error {
	if len(p) == 0 || uint64(len(p)) > 0xffffffff {
		return fmt.Errorf("frame streams: cannot write a frame of %d bytes", len(p))
	}
	binary.BigEndian.PutUint32(wr.hdr[:], uint32(len(p)))
	if _, err := wr.bw.Write(wr.hdr[:]); err != nil {
		return err
	}
	_, err := wr.bw.Write(p)
	return err
}

// Flush writes buffered frames to the underlying writer.
func (wr *Writer) Flush() error { return wr.bw.Flush() }

// Close writes STOP, flushes, and when bidirectional waits for FINISH. It does not close the
// underlying writer.
func (wr *Writer) Close() error {
	if _, err := wr.bw.Write(appendControl(nil, controlStop)); err != nil {
		return err
	}
	if err := wr.bw.Flush(); err != nil {
		return err
	}
	if wr.r != nil {
		typ, _, err := readControl(wr.r)
		if err != nil {
			return fmt.Errorf("frame streams: reading FINISH: %w", err)
		}
		if typ != controlFinish {
			return fmt.Errorf("%w: got type %d, want FINISH", ErrUnexpectedControl, typ)
		}
	}
	return nil
}
