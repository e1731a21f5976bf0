package dnswire

import (
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors. Parse and ScanRecords return one of these, or a package-level error that
// wraps one of them (so errors.Is works and no error value is built per packet).
var (
	// ErrShort: the message is shorter than the 12-byte header; no field is valid.
	ErrShort = errors.New("dnswire: message shorter than the DNS header")
	// ErrQuestion: the first question could not be parsed; the header fields are valid.
	ErrQuestion = errors.New("dnswire: malformed question")
	// ErrRecord: a question or resource record after the first question is malformed or runs
	// past the end of the message; what was found before it is kept.
	ErrRecord = errors.New("dnswire: malformed resource record")
	// ErrTooManyRecords: the record walk stopped after MaxRecords entries.
	ErrTooManyRecords = errors.New("dnswire: too many records")
)

var (
	errQNameShort    = fmt.Errorf("%w: name runs past the end of the message", ErrQuestion)
	errQNameLong     = fmt.Errorf("%w: name longer than 255 octets", ErrQuestion)
	errQNamePointers = fmt.Errorf("%w: more than 20 compression pointers (or a pointer loop)", ErrQuestion)
	errQNameLabel    = fmt.Errorf("%w: reserved label type", ErrQuestion)
	errQuestionShort = fmt.Errorf("%w: type/class run past the end of the message", ErrQuestion)

	errRecordShort = fmt.Errorf("%w: record runs past the end of the message", ErrRecord)
	errRecordLabel = fmt.Errorf("%w: reserved label type in owner name", ErrRecord)
	errOptionShort = fmt.Errorf("%w: EDNS0 option runs past the end of the OPT record", ErrRecord)
)

const (
	headerLen = 12

	// maxPointers is the reference's limit on compression pointers followed in one name.
	maxPointers = 20
	// maxNameWire is the RFC 1035 limit on a name's wire length, root label included.
	maxNameWire = 255
	// nameBufLen holds the longest possible rendering: at most 250 label octets fit in 255
	// wire octets, each rendered in at most 4 bytes (\DDD), plus the separating dots.
	nameBufLen = 1024

	// MaxRecords bounds the entries (questions after the first, then answer, authority and
	// additional records) that ScanRecords walks in one message. A record takes at least 11
	// octets, so a 64 KiB message could hold ~6000; real replies that need more than 1000
	// (large zone transfers) are not what the DNS metrics look at.
	MaxRecords = 1000

	typeOPT   = 41
	typeRRSIG = 46
	optECS    = 8 // EDNS0 option code of Client Subnet (RFC 7871)
)

// Message is the summary of one DNS message. Parse fills it and overwrites everything a
// previous Parse left; the zero value is ready to use. It is meant to be reused (one per
// worker): it owns fixed buffers for the question name, so Parse does not allocate.
type Message struct {
	// Header.
	ID                     uint16
	QR                     bool  // reply
	Opcode                 uint8 // 4 bits
	AA, TC, RD, RA, AD, CD bool
	Rcode                  uint8 // the 4 header bits; see ExtRcode for the EDNS0 extension
	QDCount                uint16
	ANCount                uint16
	NSCount                uint16
	ARCount                uint16
	Size                   int // length of the message in octets

	// First question; valid when HasQuestion.
	HasQuestion bool
	QType       uint16
	QClass      uint16

	// Filled by ScanRecords (zero until it is called).
	HasRRSIG    bool   // an answer-section record of type RRSIG (46)
	HasOPT      bool   // an OPT record in the additional section (the first one is used)
	EDNSUDPSize uint16 // OPT CLASS: requestor's UDP payload size
	EDNSVersion uint8
	DO          bool // DNSSEC OK bit of the OPT TTL
	// ExtRcode is the full 12-bit rcode when an OPT record is present (its upper 8 bits come
	// from the OPT TTL), otherwise equal to Rcode. Parse sets it to Rcode.
	ExtRcode uint16

	// EDNS Client Subnet (RFC 7871), from the first option of code 8 in the OPT record; valid
	// when HasECS (family 1 with prefixes <= 32 and at most 4 address octets, or family 2 with
	// prefixes <= 128 and at most 16 address octets).
	HasECS          bool
	ECSFamily       uint16 // 1 IPv4, 2 IPv6
	ECSSourcePrefix uint8
	ECSScopePrefix  uint8
	ECSAddr         [16]byte // address octets as sent, zero-padded (IPv4 in the first 4)

	// msg is the message last given to Parse; ScanRecords walks it again.
	msg []byte
	// qEnd is the offset just after the first question (0 when it did not parse).
	qEnd    int
	nameLen int
	name    [nameBufLen]byte // lower-cased rendering
	orig    [nameBufLen]byte // original-case rendering
}

// QName returns the first question's name in presentation form, without the trailing dot
// (the root is the empty string), with ASCII A-Z lower-cased. The slice points into m and is
// valid until the next Parse.
func (m *Message) QName() []byte { return m.name[:m.nameLen] }

// QNameOrig is QName in the original case.
func (m *Message) QNameOrig() []byte { return m.orig[:m.nameLen] }

// Parse reads the header and the first question of b. It keeps b (without copying) for
// ScanRecords, so b must not change until the message is done with.
//
// A message shorter than the header gives ErrShort. A first question that does not parse
// gives an error wrapping ErrQuestion, with the header fields valid and HasQuestion false:
// callers still count such a message by its header.
func (m *Message) Parse(b []byte) error {
	m.reset()
	m.Size = len(b)
	if len(b) < headerLen {
		return ErrShort
	}
	m.msg = b
	m.ID = be16(b[0:])
	f := be16(b[2:])
	m.QR = f&0x8000 != 0
	m.Opcode = uint8(f>>11) & 0xF
	m.AA = f&0x0400 != 0
	m.TC = f&0x0200 != 0
	m.RD = f&0x0100 != 0
	m.RA = f&0x0080 != 0
	m.AD = f&0x0020 != 0
	m.CD = f&0x0010 != 0
	m.Rcode = uint8(f & 0xF)
	m.ExtRcode = uint16(m.Rcode)
	m.QDCount = be16(b[4:])
	m.ANCount = be16(b[6:])
	m.NSCount = be16(b[8:])
	m.ARCount = be16(b[10:])
	if m.QDCount == 0 {
		return nil
	}
	off, err := m.readQName(b, headerLen)
	if err != nil {
		m.nameLen = 0
		return err
	}
	if off+4 > len(b) {
		m.nameLen = 0
		return errQuestionShort
	}
	m.QType = be16(b[off:])
	m.QClass = be16(b[off+2:])
	m.qEnd = off + 4
	m.HasQuestion = true
	return nil
}

// reset clears every field but the name buffers (their contents are cut by nameLen).
func (m *Message) reset() {
	m.ID, m.QR, m.Opcode = 0, false, 0
	m.AA, m.TC, m.RD, m.RA, m.AD, m.CD = false, false, false, false, false, false
	m.Rcode = 0
	m.QDCount, m.ANCount, m.NSCount, m.ARCount, m.Size = 0, 0, 0, 0, 0
	m.HasQuestion, m.QType, m.QClass = false, 0, 0
	m.resetScan()
	m.ExtRcode = 0
	m.msg, m.qEnd, m.nameLen = nil, 0, 0
}

func (m *Message) resetScan() {
	m.HasRRSIG, m.HasOPT, m.EDNSUDPSize, m.EDNSVersion, m.DO = false, false, 0, 0, false
	m.ExtRcode = uint16(m.Rcode)
	m.HasECS, m.ECSFamily, m.ECSSourcePrefix, m.ECSScopePrefix = false, 0, 0, 0
	m.ECSAddr = [16]byte{}
}

// readQName renders the name at off into m.name/m.orig and returns the offset just after it
// in the question (after the first compression pointer, if any).
func (m *Message) readQName(b []byte, off int) (int, error) {
	n := 0     // rendered length
	wire := 1  // wire octets so far, counting the final root label
	jumps := 0 // compression pointers followed
	end := -1  // offset after the name at its original position
	for {
		if off >= len(b) {
			return 0, errQNameShort
		}
		c := int(b[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				m.nameLen = n
				return end, nil
			}
			off++
			if off+c > len(b) {
				return 0, errQNameShort
			}
			wire += c + 1
			if wire > maxNameWire {
				return 0, errQNameLong
			}
			// The wire limit bounds n below 4*254 < nameBufLen, so these writes stay in range.
			if n > 0 {
				m.name[n], m.orig[n] = '.', '.'
				n++
			}
			for _, ch := range b[off : off+c] {
				switch {
				case ch == '.' || ch == '\\':
					m.name[n], m.orig[n] = '\\', '\\'
					m.name[n+1], m.orig[n+1] = ch, ch
					n += 2
				case ch < 0x21 || ch > 0x7e:
					d0, d1, d2 := '0'+ch/100, '0'+ch/10%10, '0'+ch%10
					m.name[n], m.orig[n] = '\\', '\\'
					m.name[n+1], m.orig[n+1] = d0, d0
					m.name[n+2], m.orig[n+2] = d1, d1
					m.name[n+3], m.orig[n+3] = d2, d2
					n += 4
				default:
					lc := ch
					if 'A' <= ch && ch <= 'Z' {
						lc += 'a' - 'A'
					}
					m.name[n], m.orig[n] = lc, ch
					n++
				}
			}
			off += c
		case 0xC0:
			if off+1 >= len(b) {
				return 0, errQNameShort
			}
			if end < 0 {
				end = off + 2
			}
			// A loop can only repeat pointers, so the jump limit also ends every loop.
			jumps++
			if jumps > maxPointers {
				return 0, errQNamePointers
			}
			off = (c&0x3F)<<8 | int(b[off+1])
		default: // 0x40 (extended label, RFC 6891 deprecated it) and 0x80 are not names
			return 0, errQNameLabel
		}
	}
}

// ScanRecords walks the records after the first question and fills HasRRSIG, the OPT fields,
// ExtRcode and the ECS fields. It reads the message given to the last Parse, which must not
// have failed with ErrShort or ErrQuestion (that error is returned again: without the end of
// the first question the records cannot be found).
//
// On a malformed or truncated record it stops and returns an error wrapping ErrRecord,
// keeping what it found before; it stops with ErrTooManyRecords after MaxRecords entries.
func (m *Message) ScanRecords() error {
	m.resetScan()
	b := m.msg
	if b == nil {
		return ErrShort
	}
	off := headerLen
	if m.QDCount > 0 {
		if !m.HasQuestion {
			return ErrQuestion
		}
		off = m.qEnd
	}
	walked := 0
	// Further questions: a name and type/class.
	for i := 1; i < int(m.QDCount); i++ {
		if walked == MaxRecords {
			return ErrTooManyRecords
		}
		walked++
		var err error
		if off, err = skipName(b, off); err != nil {
			return err
		}
		if off += 4; off > len(b) {
			return errRecordShort
		}
	}
	var optErr error
	counts := [3]uint16{m.ANCount, m.NSCount, m.ARCount}
	for sec, count := range counts {
		for range int(count) {
			if walked == MaxRecords {
				return ErrTooManyRecords
			}
			walked++
			var err error
			if off, err = skipName(b, off); err != nil {
				return err
			}
			if off+10 > len(b) {
				return errRecordShort
			}
			typ := be16(b[off:])
			class := be16(b[off+2:])
			ttl := uint32(be16(b[off+4:]))<<16 | uint32(be16(b[off+6:]))
			rdLen := int(be16(b[off+8:]))
			off += 10
			if off+rdLen > len(b) {
				return errRecordShort
			}
			switch {
			case sec == 0 && typ == typeRRSIG:
				m.HasRRSIG = true
			case sec == 2 && typ == typeOPT && !m.HasOPT:
				// RFC 6891 allows one OPT anywhere in the additional section (the reference
				// only looked at the first record); a second one is ignored.
				m.HasOPT = true
				m.EDNSUDPSize = class
				m.ExtRcode = uint16(ttl>>24)<<4 | uint16(m.Rcode)
				m.EDNSVersion = uint8(ttl >> 16)
				m.DO = ttl&0x8000 != 0
				optErr = m.scanOptions(b[off : off+rdLen])
			}
			off += rdLen
		}
	}
	return optErr
}

// scanOptions looks through every option of an OPT record's RDATA for the first ECS option.
func (m *Message) scanOptions(rd []byte) error {
	seenECS := false
	for len(rd) > 0 {
		if len(rd) < 4 {
			return errOptionShort
		}
		code, n := be16(rd), int(be16(rd[2:]))
		rd = rd[4:]
		if n > len(rd) {
			return errOptionShort
		}
		if code == optECS && !seenECS {
			seenECS = true
			m.setECS(rd[:n])
		}
		rd = rd[n:]
	}
	return nil
}

func (m *Message) setECS(d []byte) {
	if len(d) < 4 {
		return
	}
	family, src, scope, addr := be16(d), d[2], d[3], d[4:]
	var maxBits int
	switch family {
	case 1:
		maxBits = 32
	case 2:
		maxBits = 128
	default:
		return
	}
	// Lenient like most servers: the address may carry more octets than the source prefix
	// needs (RFC 7871 says it should not), but never more than the family's address length.
	if int(src) > maxBits || int(scope) > maxBits || len(addr) > maxBits/8 {
		return
	}
	m.HasECS = true
	m.ECSFamily = family
	m.ECSSourcePrefix = src
	m.ECSScopePrefix = scope
	copy(m.ECSAddr[:], addr)
}

// AppendECSText appends the ECS address as text to dst: dotted quad for IPv4, RFC 5952
// compressed form for IPv6 (e.g. "2001:470:1f0b:1600::"). Without a valid ECS option it
// returns dst unchanged.
func (m *Message) AppendECSText(dst []byte) []byte {
	if !m.HasECS {
		return dst
	}
	if m.ECSFamily == 1 {
		return netip.AddrFrom4([4]byte(m.ECSAddr[:4])).AppendTo(dst)
	}
	return netip.AddrFrom16(m.ECSAddr).AppendTo(dst)
}

// skipName returns the offset after the name at off without rendering it: a record's owner
// name ends at its first zero label or compression pointer.
func skipName(b []byte, off int) (int, error) {
	for {
		if off >= len(b) {
			return 0, errRecordShort
		}
		c := int(b[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xC0:
			if off+2 > len(b) {
				return 0, errRecordShort
			}
			return off + 2, nil
		default:
			return 0, errRecordLabel
		}
	}
}

func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}
