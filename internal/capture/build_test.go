package capture

import (
	"encoding/binary"
)

// Test-only writers for the cases gopacket's writers do not cover (big-endian files, the
// modified pcap format, pcapng timestamp options, simple and obsolete packet blocks, unknown
// blocks). They follow the file format specifications field by field.

// byteOrder is what both binary.LittleEndian and binary.BigEndian provide.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

type rec struct {
	sec, frac uint32 // pcap timestamp
	ts        uint64 // pcapng timestamp in interface units
	iface     uint32
	wire      uint32
	data      []byte
}

// pcapFile builds a pcap file: magic is one of the pcapMagic* constants.
func pcapFile(order byteOrder, magic uint32, link uint32, recs []rec) []byte {
	b := order.AppendUint32(nil, magic)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 0)
	b = order.AppendUint32(b, 65535)
	b = order.AppendUint32(b, link)
	for _, r := range recs {
		b = order.AppendUint32(b, r.sec)
		b = order.AppendUint32(b, r.frac)
		b = order.AppendUint32(b, uint32(len(r.data)))
		wire := r.wire
		if wire == 0 {
			wire = uint32(len(r.data))
		}
		b = order.AppendUint32(b, wire)
		if magic == pcapMagicModified {
			b = order.AppendUint32(b, 2)      // ifindex
			b = order.AppendUint16(b, 0x0800) // protocol
			b = append(b, 0, 0)               // packet type, pad
		}
		b = append(b, r.data...)
	}
	return b
}

// ngWriter builds pcapng blocks in one byte order.
type ngWriter struct {
	o byteOrder
	b []byte
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (w *ngWriter) block(typ uint32, body []byte) {
	body = pad4(body)
	n := uint32(12 + len(body))
	w.b = w.o.AppendUint32(w.b, typ)
	w.b = w.o.AppendUint32(w.b, n)
	w.b = append(w.b, body...)
	w.b = w.o.AppendUint32(w.b, n)
}

func (w *ngWriter) option(b []byte, code uint16, v []byte) []byte {
	b = w.o.AppendUint16(b, code)
	b = w.o.AppendUint16(b, uint16(len(v)))
	return pad4(append(b, v...))
}

func (w *ngWriter) section() {
	body := w.o.AppendUint32(nil, ngBOM)
	body = w.o.AppendUint16(body, 1)
	body = w.o.AppendUint16(body, 0)
	body = w.o.AppendUint64(body, ^uint64(0)) // section length unknown
	w.block(ngBlockSHB, body)
}

// iface adds an interface; tsresol < 0 leaves the option out, offset 0 too.
func (w *ngWriter) iface(link uint16, snap uint32, tsresol int, offset int64) {
	body := w.o.AppendUint16(nil, link)
	body = w.o.AppendUint16(body, 0)
	body = w.o.AppendUint32(body, snap)
	body = w.option(body, 2, []byte("eth0")) // if_name, to be skipped
	if tsresol >= 0 {
		body = w.option(body, ngOptTSResol, []byte{byte(tsresol)})
	}
	if offset != 0 {
		body = w.option(body, ngOptTSOffset, w.o.AppendUint64(nil, uint64(offset)))
	}
	body = w.option(body, ngOptEnd, nil)
	w.block(ngBlockIDB, body)
}

func (w *ngWriter) epb(r rec) {
	body := w.o.AppendUint32(nil, r.iface)
	body = w.o.AppendUint32(body, uint32(r.ts>>32))
	body = w.o.AppendUint32(body, uint32(r.ts))
	body = w.o.AppendUint32(body, uint32(len(r.data)))
	wire := r.wire
	if wire == 0 {
		wire = uint32(len(r.data))
	}
	body = w.o.AppendUint32(body, wire)
	body = pad4(append(body, r.data...))
	body = w.option(body, 1, []byte("a comment")) // opt_comment, to be skipped
	body = w.option(body, ngOptEnd, nil)
	w.block(ngBlockEPB, body)
}

func (w *ngWriter) pb(r rec) {
	body := w.o.AppendUint16(nil, uint16(r.iface))
	body = w.o.AppendUint16(body, 0) // drops
	body = w.o.AppendUint32(body, uint32(r.ts>>32))
	body = w.o.AppendUint32(body, uint32(r.ts))
	body = w.o.AppendUint32(body, uint32(len(r.data)))
	body = w.o.AppendUint32(body, uint32(len(r.data)))
	w.block(ngBlockPB, append(body, r.data...))
}

func (w *ngWriter) spb(wire uint32, data []byte) {
	body := w.o.AppendUint32(nil, wire)
	w.block(ngBlockSPB, append(body, data...))
}
