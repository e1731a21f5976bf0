package gen

// Query names come in three disjoint families, each an injective function of an index, so the
// number of distinct names written is known exactly without storing any name:
//
//   - forward names (all qtypes but PTR): <word>[-<base36 n>].[<middle>.]<zone>, index i ↦ word
//     i%len(words) and suffix i/len(words) (words hold no '-', so the first label alone
//     identifies i);
//   - reverse names (PTR): <c>.<b>.<a>.10.in-addr.arpa for i = a<<16|b<<8|c;
//   - flood names: <10 base32 chars>.<flood zone>, the chars a bijection of a counter.
//
// Config.Validate keeps the zones, in-addr.arpa and the flood zone in disjoint trees.

var words = [...]string{
	"www", "api", "mail", "cdn", "static", "img", "login", "auth", "app", "m",
	"shop", "blog", "news", "video", "assets", "files", "docs", "dev", "status", "support",
	"portal", "vpn", "smtp", "imap", "pop", "ftp", "git", "wiki", "search", "maps",
	"store", "pay", "accounts", "id", "sso", "media", "stream", "chat", "meet", "cloud",
	"data", "metrics", "logs", "edge", "gw", "proxy", "ns", "time", "update", "download",
	"mobile", "web", "admin", "crm", "hr", "intranet", "calendar", "drive", "photos", "music",
	"telemetry", "config", "ads", "tracker",
}

var middles = [...]string{"eu", "us", "ap", "prod", "int", "svc"}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"
const base32 = "abcdefghijklmnopqrstuvwxyz234567"

// zoneWire is a zone in wire format (lower case, without the root label) with its text form.
type zoneWire struct {
	text   string
	wire   []byte // labels, no terminating 0
	labels int
	keyTag uint16 // DNSKEY tag written in this zone's RRSIGs
}

func makeZone(z string) zoneWire {
	zw := zoneWire{text: z}
	start := 0
	for i := 0; i <= len(z); i++ {
		if i == len(z) || z[i] == '.' {
			zw.wire = append(zw.wire, byte(i-start))
			zw.wire = append(zw.wire, z[start:i]...)
			zw.labels++
			start = i + 1
		}
	}
	var h uint64
	for i := 0; i < len(z); i++ {
		h = mix64(h ^ uint64(z[i]))
	}
	zw.keyTag = uint16(h)
	return zw
}

var reverseZone = makeZone("in-addr.arpa")

// putLabel appends one label and returns the new offset.
func putLabel(b []byte, off int, s string) int {
	b[off] = byte(len(s))
	copy(b[off+1:], s)
	return off + 1 + len(s)
}

// forwardShape returns the per-name properties of forward name i: word index, numeric suffix,
// middle label (-1 for none) and zone index.
func forwardShape(i uint32, nzones int) (word int, suffix uint32, middle int, zone int) {
	h := mix64(uint64(i) ^ 0x6e616d65)
	word = int(i % uint32(len(words)))
	suffix = i / uint32(len(words))
	middle = -1
	if h&7 < 3 {
		middle = int((h >> 3) % uint64(len(middles)))
	}
	zone = int((h >> 16) % uint64(nzones))
	return
}

// putForwardName writes forward name i (with its root label) at b[off:] and returns the end
// offset, the offset of the zone's first label and the zone index.
func putForwardName(b []byte, off int, i uint32, zones []zoneWire) (end, zoneOff, zone int) {
	w, suf, mid, zone := forwardShape(i, len(zones))
	word := words[w]
	if suf == 0 {
		off = putLabel(b, off, word)
	} else {
		start := off
		off++
		off += copy(b[off:], word)
		b[off] = '-'
		off++
		var tmp [8]byte
		n := len(tmp)
		for v := suf; v > 0; v /= 36 {
			n--
			tmp[n] = base36[v%36]
		}
		off += copy(b[off:], tmp[n:])
		b[start] = byte(off - start - 1)
	}
	if mid >= 0 {
		off = putLabel(b, off, middles[mid])
	}
	zoneOff = off
	off += copy(b[off:], zones[zone].wire)
	b[off] = 0
	return off + 1, zoneOff, zone
}

// putDecimalLabel writes v (0..255) as a decimal label.
func putDecimalLabel(b []byte, off int, v uint32) int {
	switch {
	case v >= 100:
		b[off] = 3
		b[off+1] = byte('0' + v/100)
		b[off+2] = byte('0' + v/10%10)
		b[off+3] = byte('0' + v%10)
		return off + 4
	case v >= 10:
		b[off] = 2
		b[off+1] = byte('0' + v/10)
		b[off+2] = byte('0' + v%10)
		return off + 3
	}
	b[off] = 1
	b[off+1] = byte('0' + v)
	return off + 2
}

// putReverseName writes the PTR name of 10.a.b.c (i = a<<16|b<<8|c) and returns the end offset
// and the offset of the "10" label (the reverse zone 10.in-addr.arpa).
func putReverseName(b []byte, off int, i uint32) (end, zoneOff int) {
	off = putDecimalLabel(b, off, i&255)
	off = putDecimalLabel(b, off, i>>8&255)
	off = putDecimalLabel(b, off, i>>16&255)
	zoneOff = off
	off = putLabel(b, off, "10")
	off += copy(b[off:], reverseZone.wire)
	b[off] = 0
	return off + 1, zoneOff
}

// floodLabel returns the 10-character label of flood query number c. The scramble is a
// bijection on 50 bits (odd multiplications and xor-shifts), so labels never repeat.
func floodLabel(c uint64) [10]byte {
	const mask = 1<<50 - 1
	v := (c + 0x2b7e151628aed) & mask // an offset, so the first label is not "aaaaaaaaaa"
	v = (v * 0x5851f42d4c957f2d) & mask
	v ^= v >> 25
	v = (v * 0x14057b7ef767814f) & mask
	v ^= v >> 22
	var out [10]byte
	for k := 9; k >= 0; k-- {
		out[k] = base32[v&31]
		v >>= 5
	}
	return out
}

// putFloodName writes <label>.<flood zone> and returns the end and zone offsets.
func putFloodName(b []byte, off int, c uint64, zone *zoneWire) (end, zoneOff int) {
	l := floodLabel(c)
	b[off] = 10
	copy(b[off+1:], l[:])
	off += 11
	zoneOff = off
	off += copy(b[off:], zone.wire)
	b[off] = 0
	return off + 1, zoneOff
}

// mixCase flips the case of letters in the wire name at b[off:end] using random bits (DNS 0x20).
func mixCase(b []byte, off, end int, r *rng) {
	bitsLeft := 0
	var bitsv uint64
	for off < end {
		l := int(b[off])
		off++
		if l == 0 {
			return
		}
		for k := off; k < off+l && k < end; k++ {
			c := b[k]
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				if bitsLeft == 0 {
					bitsv = r.next()
					bitsLeft = 64
				}
				if bitsv&1 == 1 {
					b[k] = c ^ 0x20
				}
				bitsv >>= 1
				bitsLeft--
			}
		}
		off += l
	}
}

// countLabels returns the number of labels of the uncompressed wire name at b[off:].
func countLabels(b []byte, off int) int {
	n := 0
	for off < len(b) && b[off] != 0 {
		n++
		off += int(b[off]) + 1
	}
	return n
}
