// Package geo holds the MaxMind lookups of pktvisor: the city/location string and coordinates
// (GeoIP2/GeoLite2 City databases) and the "<asn>/<organization>" string (ASN or ISP databases),
// formatted exactly as the reference agent formats them (src/GeoDB.cpp), behind per-worker LRU
// caches.
//
// Design choices:
//   - github.com/oschwald/maxminddb-golang/v2 reads the databases (memory-mapped, pure Go, safe
//     for concurrent lookups), so one DB is shared by every worker.
//   - Records are decoded with the library's cursor API (mmdbdata.CursorUnmarshaler) instead of
//     reflection: only the handful of fields the strings need are read, everything else is
//     skipped without decoding, and a field of an unexpected type is treated as absent (the
//     reference checks each field's type the same way) instead of failing the whole record.
//   - A Lookup belongs to one worker and is not safe for concurrent use, so its caches
//     (github.com/hashicorp/golang-lru/v2/simplelru, the lock-free variant) need no locks. The key
//     is the raw address ([16]byte + length): a cache hit hashes 17 bytes and returns strings that
//     are already built, so it does not allocate. A miss allocates the result strings.
//   - Cached strings are copies, never views of the memory map, so they stay valid after Close.
package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"strconv"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// Unknown is the location or ASN string of an address the database does not hold.
const Unknown = "Unknown"

// DefaultCacheSize is the reference's default `--geo-cache-size`.
const DefaultCacheSize = 10000

// DB is one open MaxMind database. It is read-only and safe for concurrent use; Close it only
// when no Lookup uses it any more.
type DB struct {
	r    *maxminddb.Reader
	path string
}

// Open opens (memory-maps) a MaxMind database. Errors start with the file name, like the
// reference's "<file>: <reason>".
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		// os errors already name the file; keep only the reason so the name appears once.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &DB{r: r, path: path}, nil
}

// Path returns the file the database was opened from.
func (db *DB) Path() string { return db.path }

// Type returns the database type from its metadata ("GeoIP2-City", "GeoLite2-ASN", …).
func (db *DB) Type() string { return db.r.Metadata.DatabaseType }

// Close releases the database. Lookups on a closed DB answer Unknown.
func (db *DB) Close() error {
	if db == nil || db.r == nil {
		return nil
	}
	if err := db.r.Close(); err != nil {
		return fmt.Errorf("%s: %w", db.path, err)
	}
	return nil
}

// City is the geo information of one address. Location "" means the city database is disabled
// (or, as in the reference, a record that holds none of the fields); Lat and Lon are "" when the
// record has no coordinates.
type City struct {
	Location string // "continent/country/subdivision/city", parts present only
	Lat      string // "%f" of location.latitude
	Lon      string // "%f" of location.longitude
}

var unknownCity = City{Location: Unknown}

// addrKey is a cache key: the address bytes and their count (4 or 16), so an IPv4 address and
// its IPv4-mapped IPv6 form are distinct entries, as they are distinct lookups.
type addrKey struct {
	a [16]byte
	n uint8
}

// Lookup answers City and ASN queries for one worker. It is not safe for concurrent use.
type Lookup struct {
	city, asn *maxminddb.Reader
	cityCache *simplelru.LRU[addrKey, City]
	asnCache  *simplelru.LRU[addrKey, string]

	crec cityRecord // scratch records, reused so a miss does not allocate them
	arec asnRecord
	buf  []byte
}

// NewLookup makes a per-worker lookup. Either DB may be nil (that lookup is disabled).
// cacheSize is the LRU capacity of each enabled database's cache; 0 (or less) disables caching.
func NewLookup(city, asn *DB, cacheSize int) *Lookup {
	l := &Lookup{buf: make([]byte, 0, 128)}
	if city != nil {
		l.city = city.r
		if cacheSize > 0 {
			l.cityCache, _ = simplelru.NewLRU[addrKey, City](cacheSize, nil) // errors only for size <= 0
		}
	}
	if asn != nil {
		l.asn = asn.r
		if cacheSize > 0 {
			l.asnCache, _ = simplelru.NewLRU[addrKey, string](cacheSize, nil)
		}
	}
	return l
}

// CityEnabled reports whether a city database is configured.
func (l *Lookup) CityEnabled() bool { return l.city != nil }

// ASNEnabled reports whether an ASN database is configured.
func (l *Lookup) ASNEnabled() bool { return l.asn != nil }

// toKey converts a 4-byte IPv4 or 16-byte IPv6 address; other lengths are not addresses.
func toKey(addr []byte) (addrKey, netip.Addr, bool) {
	var k addrKey
	switch len(addr) {
	case 4:
		k.n = 4
		copy(k.a[:], addr)
		return k, netip.AddrFrom4([4]byte(addr)), true
	case 16:
		k.n = 16
		copy(k.a[:], addr)
		return k, netip.AddrFrom16(k.a), true
	default:
		return k, netip.Addr{}, false
	}
}

// City returns the location of addr (4-byte IPv4 or 16-byte IPv6). Disabled ⇒ City{}; not in
// the database, lookup error or malformed address ⇒ Location "Unknown".
func (l *Lookup) City(addr []byte) City {
	if l.city == nil {
		return City{}
	}
	k, ip, ok := toKey(addr)
	if !ok {
		return unknownCity
	}
	if l.cityCache != nil {
		if c, ok := l.cityCache.Get(k); ok {
			return c
		}
	}
	c := l.lookupCity(ip)
	if l.cityCache != nil {
		l.cityCache.Add(k, c)
	}
	return c
}

// ASN returns "<number>/<organization>" for addr. Disabled ⇒ ""; not found ⇒ "Unknown".
func (l *Lookup) ASN(addr []byte) string {
	if l.asn == nil {
		return ""
	}
	k, ip, ok := toKey(addr)
	if !ok {
		return Unknown
	}
	if l.asnCache != nil {
		if s, ok := l.asnCache.Get(k); ok {
			return s
		}
	}
	s := l.lookupASN(ip)
	if l.asnCache != nil {
		l.asnCache.Add(k, s)
	}
	return s
}

func (l *Lookup) lookupCity(ip netip.Addr) City {
	res := l.city.Lookup(ip)
	if !res.Found() {
		return unknownCity
	}
	r := &l.crec
	*r = cityRecord{}
	// A decode error leaves the fields read before it; the reference reads each field
	// independently, so partial data is the closest behaviour.
	_ = res.Decode(r)

	b := l.buf[:0]
	if r.continentOK {
		b = append(b, r.continent...)
	}
	switch {
	case r.countryNamePresent:
		// The reference falls back to iso_code only when names.en is missing, not when it has
		// the wrong type.
		if r.countryNameOK {
			b = append(append(b, '/'), r.countryName...)
		}
	case r.countryISOOK:
		b = append(append(b, '/'), r.countryISO...)
	}
	if r.subdivisionOK {
		b = append(append(b, '/'), r.subdivision...)
	}
	if r.cityOK {
		b = append(append(b, '/'), r.city...)
	}
	c := City{Location: string(b)}
	if r.latOK {
		c.Lat = string(appendCFloat(b[:0], r.lat))
	}
	if r.lonOK {
		c.Lon = string(appendCFloat(b[:0], r.lon))
	}
	l.buf = b[:0]
	return c
}

func (l *Lookup) lookupASN(ip netip.Addr) string {
	res := l.asn.Lookup(ip)
	if !res.Found() {
		return Unknown
	}
	r := &l.arec
	*r = asnRecord{}
	_ = res.Decode(r)

	b := l.buf[:0]
	switch r.numKind {
	case numUnsigned:
		b = strconv.AppendUint(b, r.num, 10)
	case numSigned:
		b = strconv.AppendInt(b, int64(int32(r.num)), 10)
	case numString:
		b = append(b, r.numStr...)
	}
	if r.orgOK {
		b = append(append(b, '/'), r.org...)
	}
	s := string(b)
	l.buf = b[:0]
	return s
}

// appendCFloat formats like C++ std::to_string(double), i.e. printf("%f"): six decimals, and
// glibc's spelling of the non-finite values.
func appendCFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		if math.Signbit(v) {
			return append(b, "-nan"...)
		}
		return append(b, "nan"...)
	case math.IsInf(v, 1):
		return append(b, "inf"...)
	case math.IsInf(v, -1):
		return append(b, "-inf"...)
	}
	return strconv.AppendFloat(b, v, 'f', 6, 64)
}

// cityRecord receives the fields of a City record that the location string needs.
type cityRecord struct {
	continent, countryName, countryISO, subdivision, city string
	lat, lon                                              float64

	continentOK, countryNamePresent, countryNameOK, countryISOOK bool
	subdivisionOK, cityOK, latOK, lonOK                          bool
}

// UnmarshalMaxMindDBCursor walks the top-level map once, opening only continent, country,
// subdivisions, city and location; every other value is skipped undecoded.
func (r *cityRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	return walkMap(c, func(key []byte, v mmdbdata.Cursor) {
		switch string(key) {
		case "continent":
			if code, ok := field(v, "code"); ok {
				r.continent, r.continentOK = readString(code)
			}
		case "country":
			if names, ok := field(v, "names"); ok {
				if en, ok := field(names, "en"); ok {
					r.countryNamePresent = true
					r.countryName, r.countryNameOK = readString(en)
				}
			}
			if iso, ok := field(v, "iso_code"); ok {
				r.countryISO, r.countryISOOK = readString(iso)
			}
		case "subdivisions":
			if first, ok := firstElem(v); ok {
				if iso, ok := field(first, "iso_code"); ok {
					r.subdivision, r.subdivisionOK = readString(iso)
				}
			}
		case "city":
			if names, ok := field(v, "names"); ok {
				if en, ok := field(names, "en"); ok {
					r.city, r.cityOK = readString(en)
				}
			}
		case "location":
			if lat, ok := field(v, "latitude"); ok {
				r.lat, r.latOK = readDouble(lat)
			}
			if lon, ok := field(v, "longitude"); ok {
				r.lon, r.lonOK = readDouble(lon)
			}
		}
	})
}

type numKind uint8

const (
	numNone numKind = iota
	numUnsigned
	numSigned
	numString
)

// asnRecord receives autonomous_system_number/organization of an ASN or ISP record.
type asnRecord struct {
	num     uint64
	numStr  string
	numKind numKind
	org     string
	orgOK   bool
}

// UnmarshalMaxMindDBCursor reads the two top-level fields, accepting for the number the same
// types the reference prints (uint16/32/64, int32, string).
func (r *asnRecord) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	return walkMap(c, func(key []byte, v mmdbdata.Cursor) {
		switch string(key) {
		case "autonomous_system_number":
			kind, err := v.Kind()
			if err != nil {
				return
			}
			switch kind {
			case mmdbdata.KindUint16, mmdbdata.KindUint32, mmdbdata.KindUint64:
				if n, _, err := v.ReadUint(); err == nil {
					r.num, r.numKind = n, numUnsigned
				}
			case mmdbdata.KindInt32:
				if n, _, err := v.ReadInt32(); err == nil {
					r.num, r.numKind = uint64(uint32(n)), numSigned
				}
			case mmdbdata.KindString:
				if s, _, err := v.ReadString(); err == nil {
					r.numStr, r.numKind = s, numString
				}
			}
		case "autonomous_system_organization":
			r.org, r.orgOK = readString(v)
		}
	})
}

// walkMap calls fn for every entry of the map at c and returns the cursor after the map.
// fn receives immutable cursors and may read them freely; walkMap advances with Skip.
func walkMap(c mmdbdata.Cursor, fn func(key []byte, v mmdbdata.Cursor)) (mmdbdata.Cursor, error) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, fmt.Errorf("geo: record: %w", err)
	}
	var next mmdbdata.Cursor
	for {
		key, v, ok := m.Next(next)
		if !ok {
			break
		}
		fn(key, v)
		if next, err = v.Skip(); err != nil {
			return mmdbdata.Cursor{}, fmt.Errorf("geo: record: %w", err)
		}
	}
	end, err := m.End()
	if err != nil {
		return mmdbdata.Cursor{}, fmt.Errorf("geo: record: %w", err)
	}
	return end, nil
}

// field returns the value of key in the map at c (first occurrence, like libmaxminddb).
func field(c mmdbdata.Cursor, key string) (mmdbdata.Cursor, bool) {
	m, err := c.Map()
	if err != nil {
		return mmdbdata.Cursor{}, false
	}
	var next mmdbdata.Cursor
	for {
		k, v, ok := m.Next(next)
		if !ok {
			return mmdbdata.Cursor{}, false
		}
		if string(k) == key {
			return v, true
		}
		if next, err = v.Skip(); err != nil {
			return mmdbdata.Cursor{}, false
		}
	}
}

// firstElem returns element 0 of the array at c.
func firstElem(c mmdbdata.Cursor) (mmdbdata.Cursor, bool) {
	s, err := c.Slice()
	if err != nil {
		return mmdbdata.Cursor{}, false
	}
	_, v, ok := s.Next(mmdbdata.Cursor{})
	return v, ok
}

// readString reads a UTF-8 string value; other types are "absent", as in the reference.
func readString(c mmdbdata.Cursor) (string, bool) {
	if k, err := c.Kind(); err != nil || k != mmdbdata.KindString {
		return "", false
	}
	s, _, err := c.ReadString()
	return s, err == nil
}

// readDouble reads a double value; the reference ignores float32 coordinates.
func readDouble(c mmdbdata.Cursor) (float64, bool) {
	if k, err := c.Kind(); err != nil || k != mmdbdata.KindFloat64 {
		return 0, false
	}
	v, _, err := c.ReadFloat64()
	return v, err == nil
}
