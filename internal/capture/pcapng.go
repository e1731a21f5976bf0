package capture

import (
	"fmt"
	"io"
	"math/bits"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// pcapng block types and constants (draft-ietf-opsawg-pcapng).
const (
	ngBlockSHB = 0x0A0D0D0A // Section Header: the same in both byte orders
	ngBlockIDB = 1          // Interface Description
	ngBlockPB  = 2          // Packet Block (obsolete, still written by old tools)
	ngBlockSPB = 3          // Simple Packet Block
	ngBlockEPB = 6          // Enhanced Packet Block
	ngBOM      = 0x1A2B3C4D

	ngOptEnd      = 0
	ngOptTSResol  = 9
	ngOptTSOffset = 14

	// maxInterfaces bounds the interface table of a section: a file of nothing but interface
	// blocks must not grow it without limit (packet blocks address at most 2^32, real files a
	// handful).
	maxInterfaces = 1 << 16
)

// ngIface is what a packet needs from its interface.
type ngIface struct {
	link     decode.LinkType
	snap     uint32
	pow2     bool  // timestamp units are 2^-exp s (else 10^-exp s)
	exp      uint8 // default 6: microseconds
	offsetNs int64 // if_tsoffset, in ns
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// nanos converts a timestamp in the interface's units to Unix nanoseconds.
func (ifc *ngIface) nanos(ts uint64) int64 {
	var ns uint64
	switch {
	case ifc.pow2:
		e := uint(ifc.exp)
		sec, frac := ts>>e, ts&(1<<e-1)
		hi, lo := bits.Mul64(frac, 1e9)
		ns = sec*1e9 + (hi<<(64-e) | lo>>e) // frac·1e9 / 2^e with a 128-bit product
	case ifc.exp <= 9:
		ns = ts * pow10[9-ifc.exp]
	default:
		ns = ts / pow10[ifc.exp-9]
	}
	return int64(ns) + ifc.offsetNs
}

// openNg reads blocks up to the first interface description, so that an unsupported link type
// is reported when the file is opened, as for pcap.
func (r *FileReader) openNg() error {
	r.ng = true
	for len(r.ifaces) == 0 {
		_, _, _, err := r.ngBlock()
		if err == io.EOF {
			r.err = io.EOF // a section without interfaces holds no packets
			return nil
		}
		if err != nil {
			return err
		}
	}
	if lt := r.ifaces[0].link; !lt.Supported() {
		return fmt.Errorf("%s: interface 0: %v: %w", r.name, lt, decode.ErrUnsupportedLink)
	}
	return nil
}

func (r *FileReader) nextNg() ([]byte, PacketInfo, error) {
	for {
		data, info, ok, err := r.ngBlock()
		if err != nil {
			return nil, PacketInfo{}, err
		}
		if !ok {
			continue
		}
		if !info.Link.Supported() {
			r.skipped++
			continue
		}
		return data, info, nil
	}
}

// ngBlock reads one block. For a packet block it returns the packet and ok; other blocks
// update the reader's state (section byte order, interfaces) or are skipped.
func (r *FileReader) ngBlock() (data []byte, info PacketInfo, ok bool, err error) {
	hdr, err := r.peek(8, "block header", true)
	if err != nil {
		return nil, info, false, err
	}
	typ := r.u32(hdr)
	if typ == ngBlockSHB {
		return nil, info, false, r.ngSection()
	}
	blen := r.u32(hdr[4:])
	if blen < 12 || blen%4 != 0 {
		return nil, info, false, r.corrupt("block type %#x: bad length %d", typ, blen)
	}
	switch typ {
	case ngBlockIDB, ngBlockEPB, ngBlockSPB, ngBlockPB:
	default:
		// Name resolution, statistics, decryption secrets, custom blocks: not needed. They
		// are streamed past, so their size does not matter.
		return nil, info, false, r.skip(int(blen), "block")
	}
	if blen > bufSize {
		return nil, info, false, r.corrupt("block type %d: length %d exceeds %d", typ, blen, bufSize)
	}
	n := int(blen)
	b, err := r.peek(n, "block", false)
	if err != nil {
		return nil, info, false, err
	}
	if r.u32(b[n-4:]) != blen {
		return nil, info, false, r.corrupt("block type %d: trailing length %d differs from leading %d", typ, r.u32(b[n-4:]), blen)
	}
	switch typ {
	case ngBlockIDB:
		err = r.ngInterface(b)
	case ngBlockEPB, ngBlockPB:
		data, info, err = r.ngPacket(typ, b)
		ok = err == nil
	case ngBlockSPB:
		data, info, err = r.ngSimplePacket(b)
		ok = err == nil
	}
	if err != nil {
		return nil, PacketInfo{}, false, err
	}
	r.br.Discard(n) // peeked: cannot fail; the bytes stay in place until the next read
	r.off += int64(n)
	return data, info, ok, nil
}

// ngSection reads a Section Header: type(4) length(4) byte-order magic(4) major(2) minor(2)
// section length(8) options. It sets the byte order and forgets the previous interfaces.
func (r *FileReader) ngSection() error {
	hdr, err := r.peek(12, "section header", false)
	if err != nil {
		return err
	}
	switch {
	case le32(hdr[8:]) == ngBOM:
		r.big = false
	case be32(hdr[8:]) == ngBOM:
		r.big = true
	default:
		return r.corrupt("section header: bad byte-order magic %#08x", be32(hdr[8:]))
	}
	blen := r.u32(hdr[4:])
	if blen < 28 || blen%4 != 0 || blen > bufSize {
		return r.corrupt("section header: bad length %d", blen)
	}
	n := int(blen)
	b, err := r.peek(n, "section header", false)
	if err != nil {
		return err
	}
	if r.u32(b[n-4:]) != blen {
		return r.corrupt("section header: trailing length %d differs from leading %d", r.u32(b[n-4:]), blen)
	}
	if major := r.u16(b[12:]); major != 1 {
		return r.corrupt("pcapng version %d.%d", major, r.u16(b[14:]))
	}
	r.ifaces = r.ifaces[:0]
	r.br.Discard(n)
	r.off += int64(n)
	return nil
}

// ngInterface reads an Interface Description: type(4) length(4) linktype(2) reserved(2)
// snaplen(4) options.
func (r *FileReader) ngInterface(b []byte) error {
	if len(b) < 20 {
		return r.corrupt("interface block: length %d < 20", len(b))
	}
	if len(r.ifaces) >= maxInterfaces {
		return r.corrupt("more than %d interfaces in a section", maxInterfaces)
	}
	ifc := ngIface{link: decode.LinkType(r.u16(b[8:])), snap: r.u32(b[12:]), exp: 6}
	opts := b[16 : len(b)-4]
	for len(opts) >= 4 {
		code, l := r.u16(opts), int(r.u16(opts[2:]))
		if code == ngOptEnd {
			break
		}
		padded := (l + 3) &^ 3
		if 4+padded > len(opts) {
			return r.corrupt("interface %d: option %d overruns its block", len(r.ifaces), code)
		}
		v := opts[4 : 4+l]
		switch {
		case code == ngOptTSResol && l >= 1:
			ifc.pow2, ifc.exp = v[0]&0x80 != 0, v[0]&0x7f
			if (ifc.pow2 && ifc.exp > 63) || (!ifc.pow2 && ifc.exp > 19) {
				return r.corrupt("interface %d: timestamp resolution %#x", len(r.ifaces), v[0])
			}
		case code == ngOptTSOffset && l >= 8:
			w0, w1 := uint64(r.u32(v)), uint64(r.u32(v[4:]))
			if r.big {
				ifc.offsetNs = int64(w0<<32|w1) * 1e9
			} else {
				ifc.offsetNs = int64(w1<<32|w0) * 1e9
			}
		}
		opts = opts[4+padded:]
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// ngPacket reads an Enhanced Packet Block — type(4) length(4) interface(4) ts_high(4)
// ts_low(4) caplen(4) wirelen(4) data options — or the obsolete Packet Block, whose interface
// field is 2 bytes followed by a 2-byte drop count.
func (r *FileReader) ngPacket(typ uint32, b []byte) ([]byte, PacketInfo, error) {
	if len(b) < 32 {
		return nil, PacketInfo{}, r.corrupt("packet block: length %d < 32", len(b))
	}
	var ifid uint32
	if typ == ngBlockEPB {
		ifid = r.u32(b[8:])
	} else {
		ifid = uint32(r.u16(b[8:]))
	}
	if ifid >= uint32(len(r.ifaces)) {
		return nil, PacketInfo{}, r.corrupt("packet block: interface %d not described (section has %d)", ifid, len(r.ifaces))
	}
	capLen, wireLen := r.u32(b[20:]), r.u32(b[24:])
	if capLen > MaxCapLen {
		return nil, PacketInfo{}, r.corrupt("packet block: captured length %d exceeds %d", capLen, MaxCapLen)
	}
	if 28+int(capLen) > len(b)-4 {
		return nil, PacketInfo{}, r.corrupt("packet block: captured length %d overruns block length %d", capLen, len(b))
	}
	ifc := &r.ifaces[ifid]
	ts := uint64(r.u32(b[12:]))<<32 | uint64(r.u32(b[16:]))
	info := PacketInfo{TS: ifc.nanos(ts), CapLen: int(capLen), WireLen: max(int(wireLen), int(capLen)), Link: ifc.link}
	end := 28 + int(capLen)
	return b[28:end:end], info, nil
}

// ngSimplePacket reads a Simple Packet Block: type(4) length(4) wirelen(4) data. It belongs to
// interface 0, has no timestamp, and its captured length is implied by the block length and
// the interface's snap length.
func (r *FileReader) ngSimplePacket(b []byte) ([]byte, PacketInfo, error) {
	if len(b) < 16 {
		return nil, PacketInfo{}, r.corrupt("simple packet block: length %d < 16", len(b))
	}
	if len(r.ifaces) == 0 {
		return nil, PacketInfo{}, r.corrupt("simple packet block before any interface")
	}
	ifc := &r.ifaces[0]
	wireLen := int(r.u32(b[8:]))
	capLen := max(min(wireLen, len(b)-16), 0)
	if ifc.snap != 0 && uint32(capLen) > ifc.snap {
		capLen = int(ifc.snap)
	}
	if capLen > MaxCapLen {
		return nil, PacketInfo{}, r.corrupt("simple packet block: captured length %d exceeds %d", capLen, MaxCapLen)
	}
	end := 12 + capLen
	return b[12:end:end], PacketInfo{CapLen: capLen, WireLen: max(wireLen, capLen), Link: ifc.link}, nil
}
