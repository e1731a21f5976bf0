package capture

import (
	"fmt"

	"github.com/pktvisor-go/pktvisor/internal/decode"
)

// pcap magic numbers as read little-endian from the first 4 bytes.
const (
	pcapMagicMicro    = 0xa1b2c3d4
	pcapMagicNano     = 0xa1b23c4d
	pcapMagicModified = 0xa1b2cd34 // Alexey Kuznetzov's patched libpcap: 24-byte record headers
)

// openPcap reads the 24-byte global header: magic(4) major(2) minor(2) thiszone(4)
// sigfigs(4) snaplen(4) linktype(4).
func (r *FileReader) openPcap(magic uint32) error {
	r.big = magic == swap32(pcapMagicMicro) || magic == swap32(pcapMagicNano) || magic == swap32(pcapMagicModified)
	if r.big {
		magic = swap32(magic)
	}
	hdr, err := r.br.Peek(24)
	if err != nil {
		return r.headerErr(err, len(hdr), 24)
	}
	r.tsMult, r.recHdr = 1000, 16
	switch magic {
	case pcapMagicNano:
		r.tsMult = 1
	case pcapMagicModified:
		r.recHdr = 24
	}
	if major := r.u16(hdr[4:]); major != 2 {
		return fmt.Errorf("%s: pcap version %d.%d: %w", r.name, major, r.u16(hdr[6:]), ErrCorrupt)
	}
	// The upper bits carry FCS information (libpcap's LT_LINKTYPE keeps the low 16).
	r.link = decode.LinkType(r.u32(hdr[20:]) & 0xFFFF)
	if !r.link.Supported() {
		return fmt.Errorf("%s: %v: %w", r.name, r.link, decode.ErrUnsupportedLink)
	}
	r.br.Discard(24)
	r.off = 24
	return nil
}

// nextPcap reads a record: ts_sec(4) ts_frac(4) caplen(4) wirelen(4) [modified: ifindex(4)
// protocol(2) pkt_type(1) pad(1)] data.
func (r *FileReader) nextPcap() ([]byte, PacketInfo, error) {
	hdr, err := r.peek(r.recHdr, "record header", true)
	if err != nil {
		return nil, PacketInfo{}, err
	}
	capLen := r.u32(hdr[8:])
	wireLen := r.u32(hdr[12:])
	if capLen > MaxCapLen {
		return nil, PacketInfo{}, r.corrupt("record %d: captured length %d exceeds %d", r.recs+1, capLen, MaxCapLen)
	}
	n := r.recHdr + int(capLen)
	rec, err := r.peek(n, "record", false)
	if err != nil {
		return nil, PacketInfo{}, err
	}
	info := PacketInfo{
		TS:      int64(r.u32(rec[0:]))*1e9 + int64(r.u32(rec[4:]))*r.tsMult,
		CapLen:  int(capLen),
		WireLen: max(int(wireLen), int(capLen)),
		Link:    r.link,
	}
	data := rec[r.recHdr:n:n]
	// Discarding leaves the bytes in place until the next read refills the buffer, which is
	// why data stays valid until the next call.
	r.br.Discard(n)
	r.off += int64(n)
	return data, info, nil
}
