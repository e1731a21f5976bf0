package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testdataDir = "/work/shared/testdata/pktvisor"

func openTestDB(t testing.TB, name string) *DB {
	t.Helper()
	path := filepath.Join(testdataDir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("test database %s not available: %v", path, err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func cityDB(t testing.TB) *DB { return openTestDB(t, "GeoIP2-City-Test.mmdb") }
func ispDB(t testing.TB) *DB  { return openTestDB(t, "GeoIP2-ISP-Test.mmdb") }

func addr4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

// raw returns the 4- or 16-byte form a decoder would hand over.
func raw(s string) []byte {
	return netip.MustParseAddr(s).AsSlice()
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nonexistent.mmdb")
	_, err := Open(missing)
	if err == nil || !strings.HasPrefix(err.Error(), missing+": ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
	if strings.Count(err.Error(), missing) != 1 {
		t.Errorf("file named more than once: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte("this is not a maxmind database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage); err == nil || !strings.HasPrefix(err.Error(), garbage+": ") {
		t.Errorf("Open(garbage) = %v", err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); err == nil || !strings.HasPrefix(err.Error(), empty+": ") {
		t.Errorf("Open(empty) = %v", err)
	}
	var nilDB *DB
	if err := nilDB.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}

// Spec §6.17 test_geoip: before enabling, lookups return "".
func TestDisabled(t *testing.T) {
	l := NewLookup(nil, nil, DefaultCacheSize)
	if l.CityEnabled() || l.ASNEnabled() {
		t.Error("enabled without databases")
	}
	if c := l.City(raw("89.160.20.112")); c != (City{}) {
		t.Errorf("City = %+v, want zero", c)
	}
	if s := l.ASN(raw("1.128.0.0")); s != "" {
		t.Errorf("ASN = %q, want empty", s)
	}
}

// Spec §6.17 test_geoip values (from the reference's own tests), with and without cache and
// asked twice so the second answer of a cached lookup comes from the cache.
func TestReferenceValues(t *testing.T) {
	city, isp := cityDB(t), ispDB(t)
	cityTests := []struct {
		addr string
		want City
	}{
		{"2a02:dac0::", City{"EU/Russia", "60.000000", "100.000000"}},
		{"89.160.20.112", City{Location: "EU/Sweden/E/Linköping"}},
		{"216.160.83.56", City{Location: "NA/United States/WA/Milton"}},
		{"6.6.6.6", City{Location: "Unknown"}},
	}
	asnTests := []struct{ addr, want string }{
		{"1.128.0.0", "1221/Telstra Pty Ltd"},
		{"6.6.6.6", "Unknown"},
		{"2401:8080::", "237/Merit Network Inc."},
	}
	for _, size := range []int{0, 1, DefaultCacheSize} {
		l := NewLookup(city, isp, size)
		if !l.CityEnabled() || !l.ASNEnabled() {
			t.Fatal("not enabled")
		}
		for range 2 {
			for _, tt := range cityTests {
				got := l.City(raw(tt.addr))
				if got.Location != tt.want.Location {
					t.Errorf("cache %d: City(%s).Location = %q, want %q", size, tt.addr, got.Location, tt.want.Location)
				}
				if tt.want.Lat != "" && (got.Lat != tt.want.Lat || got.Lon != tt.want.Lon) {
					t.Errorf("cache %d: City(%s) lat/lon = %s,%s want %s,%s", size, tt.addr, got.Lat, got.Lon, tt.want.Lat, tt.want.Lon)
				}
			}
			for _, tt := range asnTests {
				if got := l.ASN(raw(tt.addr)); got != tt.want {
					t.Errorf("cache %d: ASN(%s) = %q, want %q", size, tt.addr, got, tt.want)
				}
			}
		}
	}
}

// expectedFromGeneric formats a record decoded by the library's generic (reflection) decoder
// following spec §1.7 — an oracle independent of the cursor walker under test.
func expectedCity(rec map[string]any) City {
	get := func(path ...any) (any, bool) {
		var cur any = rec
		for _, p := range path {
			switch k := p.(type) {
			case string:
				m, ok := cur.(map[string]any)
				if !ok {
					return nil, false
				}
				if cur, ok = m[k]; !ok {
					return nil, false
				}
			case int:
				a, ok := cur.([]any)
				if !ok || k >= len(a) {
					return nil, false
				}
				cur = a[k]
			}
		}
		return cur, true
	}
	var parts []string
	if s, ok := get("continent", "code"); ok {
		if s, ok := s.(string); ok {
			parts = append(parts, s)
		}
	}
	if s, ok := get("country", "names", "en"); ok {
		if s, ok := s.(string); ok {
			parts = append(parts, "/"+s)
		}
	} else if s, ok := get("country", "iso_code"); ok {
		if s, ok := s.(string); ok {
			parts = append(parts, "/"+s)
		}
	}
	if s, ok := get("subdivisions", 0, "iso_code"); ok {
		if s, ok := s.(string); ok {
			parts = append(parts, "/"+s)
		}
	}
	if s, ok := get("city", "names", "en"); ok {
		if s, ok := s.(string); ok {
			parts = append(parts, "/"+s)
		}
	}
	c := City{Location: strings.Join(parts, "")}
	if v, ok := get("location", "latitude"); ok {
		if f, ok := v.(float64); ok {
			c.Lat = fmt.Sprintf("%f", f)
		}
	}
	if v, ok := get("location", "longitude"); ok {
		if f, ok := v.(float64); ok {
			c.Lon = fmt.Sprintf("%f", f)
		}
	}
	return c
}

func expectedASN(rec map[string]any) string {
	var s string
	switch n := rec["autonomous_system_number"].(type) {
	case uint64:
		s = fmt.Sprint(n)
	case int:
		s = fmt.Sprint(n)
	case string:
		s = n
	}
	if org, ok := rec["autonomous_system_organization"].(string); ok {
		s += "/" + org
	}
	return s
}

// Every network of both test databases: first and last address, both address forms the
// decoder produces, checked against the generic decode.
func TestAllNetworksAgainstGenericDecode(t *testing.T) {
	city, isp := cityDB(t), ispDB(t)
	l := NewLookup(city, isp, 0)
	lc := NewLookup(city, isp, 64) // small cache: exercises eviction on the way
	for _, db := range []*DB{city, isp} {
		n := 0
		for res := range db.r.Networks() {
			var rec map[string]any
			if err := res.Decode(&rec); err != nil {
				t.Fatalf("%s: generic decode %v: %v", db.Path(), res.Prefix(), err)
			}
			p := res.Prefix()
			for _, a := range []netip.Addr{p.Addr(), lastOf(p)} {
				b := a.AsSlice()
				if db == city {
					want := expectedCity(rec)
					if got := l.City(b); got != want {
						t.Errorf("City(%v) = %+v, want %+v", a, got, want)
					}
					if got := lc.City(b); got != want {
						t.Errorf("cached City(%v) = %+v, want %+v", a, got, want)
					}
				} else {
					want := expectedASN(rec)
					if got := l.ASN(b); got != want {
						t.Errorf("ASN(%v) = %q, want %q", a, got, want)
					}
					if got := lc.ASN(b); got != want {
						t.Errorf("cached ASN(%v) = %q, want %q", a, got, want)
					}
				}
			}
			n++
		}
		if n < 100 {
			t.Errorf("%s: only %d networks visited", db.Path(), n)
		}
	}
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		for bit := range 8 {
			if i*8+bit >= p.Bits() {
				b[i] |= 0x80 >> bit
			}
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// The ISP test database has a record with a number and no organization: the reference prints
// the number alone (no trailing '/').
func TestASNWithoutOrganization(t *testing.T) {
	l := NewLookup(nil, ispDB(t), 0)
	if got := l.ASN(raw("216.160.83.56")); got != "209" {
		t.Errorf("ASN = %q, want 209", got)
	}
	if got := l.ASN(raw("89.160.20.112")); got != "29518/Bredband2 AB" {
		t.Errorf("ASN = %q", got)
	}
}

// Field-type rules of the reference (each part only if present with the expected type),
// checked on synthetic records.
func TestCityFieldRules(t *testing.T) {
	names := func(en any) mMap { return mMap{{"de", "X"}, {"en", en}} }
	tests := []struct {
		name string
		rec  any
		want City
	}{
		{"all parts", mMap{
			{"city", mMap{{"geoname_id", mUint32(1)}, {"names", names("Springfield")}}},
			{"continent", mMap{{"code", "NA"}}},
			{"country", mMap{{"iso_code", "US"}, {"names", names("United States")}}},
			{"location", mMap{{"latitude", mDouble(-33.494)}, {"longitude", mDouble(143.2104)}}},
			{"subdivisions", mArr{mMap{{"iso_code", "IL"}}, mMap{{"iso_code", "ZZ"}}}},
		}, City{"NA/United States/IL/Springfield", "-33.494000", "143.210400"}},
		{"iso fallback when names.en missing", mMap{
			{"continent", mMap{{"code", "EU"}}},
			{"country", mMap{{"iso_code", "FR"}, {"names", mMap{{"de", "Frankreich"}}}}},
		}, City{Location: "EU/FR"}},
		{"no fallback when names.en has the wrong type", mMap{
			{"continent", mMap{{"code", "EU"}}},
			{"country", mMap{{"iso_code", "FR"}, {"names", names(mUint16(5))}}},
		}, City{Location: "EU"}},
		{"no continent: part starts with slash", mMap{
			{"country", mMap{{"iso_code", "FR"}}},
			{"city", mMap{{"names", names("Paris")}}},
		}, City{Location: "/FR/Paris"}},
		{"wrong types are absent", mMap{
			{"continent", mMap{{"code", mUint32(7)}}},
			{"city", mMap{{"names", "not a map"}}},
			{"subdivisions", mMap{{"iso_code", "XX"}}},
			{"location", mMap{{"latitude", mFloat(1.5)}, {"longitude", "2"}}},
		}, City{}},
		{"empty subdivisions", mMap{
			{"continent", mMap{{"code", "AS"}}},
			{"subdivisions", mArr{}},
		}, City{Location: "AS"}},
		{"subdivision without iso_code", mMap{
			{"continent", mMap{{"code", "AS"}}},
			{"subdivisions", mArr{mMap{{"names", names("X")}}, mMap{{"iso_code", "YY"}}}},
		}, City{Location: "AS"}},
		{"empty strings are present", mMap{
			{"continent", mMap{{"code", ""}}},
			{"country", mMap{{"names", names("")}}},
		}, City{Location: "/"}},
		{"coordinates only", mMap{
			{"location", mMap{{"accuracy_radius", mUint16(100)}, {"latitude", mDouble(0)}, {"longitude", mDouble(-0.0000005)}}},
		}, City{"", "0.000000", "-0.000000"}},
		{"non-finite coordinates", mMap{
			{"location", mMap{{"latitude", mDouble(math.NaN())}, {"longitude", mDouble(math.Inf(-1))}}},
		}, City{"", "nan", "-inf"}},
		{"record is not a map", "just a string", City{}},
		{"unknown keys skipped", mMap{
			{"zzz", mMap{{"continent", mMap{{"code", "XX"}}}}},
			{"registered_country", mMap{{"iso_code", "DE"}}},
			{"traits", mMap{{"is_anycast", mBool(true)}, {"blob", mBytes{1, 2, 3}}}},
			{"continent", mMap{{"names", names("Oceania")}, {"code", "OC"}}},
		}, City{Location: "OC"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := dbFromRecord(t, tt.rec)
			for _, size := range []int{0, 4} {
				l := NewLookup(db, nil, size)
				if got := l.City(raw("200.1.2.3")); got != tt.want {
					t.Errorf("cache %d: City = %+v, want %+v", size, got, tt.want)
				}
				if got := l.City(raw("10.1.2.3")); got != (City{Location: Unknown}) {
					t.Errorf("cache %d: not-found City = %+v", size, got)
				}
				// IPv6 on an IPv4-only database is a lookup error: Unknown, as in the reference.
				if got := l.City(raw("2001:db8::1")); got != (City{Location: Unknown}) {
					t.Errorf("cache %d: IPv6 on v4 DB = %+v", size, got)
				}
			}
		})
	}
}

func TestASNFieldRules(t *testing.T) {
	org := mKV{"autonomous_system_organization", "Example Org"}
	tests := []struct {
		name string
		rec  any
		want string
	}{
		{"uint16", mMap{{"autonomous_system_number", mUint16(65000)}, org}, "65000/Example Org"},
		{"uint32", mMap{org, {"autonomous_system_number", mUint32(4200000000)}}, "4200000000/Example Org"},
		{"uint64", mMap{{"autonomous_system_number", mUint64(1 << 40)}, org}, "1099511627776/Example Org"},
		{"int32 negative", mMap{{"autonomous_system_number", mInt32(-5)}, org}, "-5/Example Org"},
		{"string", mMap{{"autonomous_system_number", "AS13335"}, org}, "AS13335/Example Org"},
		{"zero", mMap{{"autonomous_system_number", mUint32(0)}}, "0"},
		{"double is not printed", mMap{{"autonomous_system_number", mDouble(1)}, org}, "/Example Org"},
		{"organization only", mMap{org}, "/Example Org"},
		{"organization wrong type", mMap{{"autonomous_system_number", mUint16(1)}, {"autonomous_system_organization", mUint16(2)}}, "1"},
		{"neither", mMap{{"isp", "X"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLookup(nil, dbFromRecord(t, tt.rec), 8)
			for range 2 {
				if got := l.ASN(raw("200.1.2.3")); got != tt.want {
					t.Errorf("ASN = %q, want %q", got, tt.want)
				}
			}
			if got := l.ASN(raw("1.2.3.4")); got != Unknown {
				t.Errorf("not-found ASN = %q", got)
			}
		})
	}
}

// Values checked by hand from the exact binary value (Python Decimal) against C's printf("%f")
// semantics: correctly rounded to six decimals.
func TestAppendCFloat(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{60, "60.000000"},
		{100, "100.000000"},
		{-33.494, "-33.494000"},
		{1e20, "100000000000000000000.000000"},
		{0.0000005, "0.000000"}, // binary value is just below 5e-7
		{0.0000015, "0.000002"}, // binary value is just above 1.5e-6
		{0.1234565, "0.123456"}, // binary value 0.12345649999999999679…
		{1.0000005, "1.000001"}, // binary value 1.00000050000000006988…
		{math.Copysign(0, -1), "-0.000000"},
		{math.Inf(1), "inf"},
		{math.Inf(-1), "-inf"},
		{math.NaN(), "nan"},
		{math.Copysign(math.NaN(), -1), "-nan"},
	}
	for _, tt := range tests {
		if got := string(appendCFloat(nil, tt.v)); got != tt.want {
			t.Errorf("appendCFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestBadAddressLengths(t *testing.T) {
	l := NewLookup(cityDB(t), ispDB(t), 16)
	for _, a := range [][]byte{nil, {1, 2, 3}, make([]byte, 5), make([]byte, 17)} {
		if got := l.City(a); got != (City{Location: Unknown}) {
			t.Errorf("City(%x) = %+v", a, got)
		}
		if got := l.ASN(a); got != Unknown {
			t.Errorf("ASN(%x) = %q", a, got)
		}
	}
	if n := l.cityCache.Len() + l.asnCache.Len(); n != 0 {
		t.Errorf("malformed addresses cached: %d", n)
	}
}

// IPv4 and IPv4-mapped IPv6 forms are distinct cache entries but, on the MaxMind test
// databases (which alias ::ffff:0:0/96 to the IPv4 tree), the same answer.
func TestMappedIPv4(t *testing.T) {
	l := NewLookup(cityDB(t), ispDB(t), 16)
	v4 := raw("89.160.20.112")
	mapped := netip.AddrFrom4([4]byte(v4)).As16()
	if a, b := l.City(v4), l.City(mapped[:]); a != b {
		t.Errorf("City v4 %+v != mapped %+v", a, b)
	}
	if l.cityCache.Len() != 2 {
		t.Errorf("cache len %d, want 2", l.cityCache.Len())
	}
}

func TestCacheEviction(t *testing.T) {
	city, isp := cityDB(t), ispDB(t)
	l := NewLookup(city, isp, 2)
	a, b, c := raw("89.160.20.112"), raw("216.160.83.56"), raw("2a02:dac0::")
	key := func(x []byte) addrKey { k, _, _ := toKey(x); return k }
	ca, cb, cc := l.City(a), l.City(b), l.City(c) // a evicted (least recently used)
	if l.cityCache.Contains(key(a)) || !l.cityCache.Contains(key(b)) || !l.cityCache.Contains(key(c)) {
		t.Fatalf("after a,b,c: cache keys %v", l.cityCache.Keys())
	}
	l.City(b)                                                        // b becomes most recent
	if got := l.City(a); got != ca || l.cityCache.Contains(key(c)) { // a back in, c out
		t.Errorf("re-lookup a = %+v, c still cached=%v", got, l.cityCache.Contains(key(c)))
	}
	if l.City(b) != cb || l.City(c) != cc {
		t.Error("answers changed across evictions")
	}
	if l.cityCache.Len() != 2 {
		t.Errorf("cache len %d, want 2", l.cityCache.Len())
	}
	// ASN cache is separate and bounded the same way.
	for _, x := range [][]byte{raw("1.128.0.0"), raw("6.6.6.6"), raw("2401:8080::"), raw("89.160.20.112")} {
		l.ASN(x)
	}
	if l.asnCache.Len() != 2 {
		t.Errorf("asn cache len %d, want 2", l.asnCache.Len())
	}
	if got := l.ASN(raw("1.128.0.0")); got != "1221/Telstra Pty Ltd" {
		t.Errorf("ASN after eviction = %q", got)
	}
	if l0 := NewLookup(city, isp, 0); l0.cityCache != nil || l0.asnCache != nil {
		t.Error("cache size 0 made a cache")
	}
	if ln := NewLookup(city, isp, -1); ln.cityCache != nil {
		t.Error("negative cache size made a cache")
	}
}

func TestCacheHitNoAlloc(t *testing.T) {
	l := NewLookup(cityDB(t), ispDB(t), 100)
	v4, v6 := raw("89.160.20.112"), raw("2401:8080::")
	l.City(v4)
	l.City(v6)
	l.ASN(v4)
	l.ASN(v6)
	if n := testing.AllocsPerRun(1000, func() {
		_ = l.City(v4)
		_ = l.City(v6)
		_ = l.ASN(v4)
		_ = l.ASN(v6)
	}); n != 0 {
		t.Errorf("cache hit allocates: %v allocs per run", n)
	}
	off := NewLookup(nil, nil, 100)
	if n := testing.AllocsPerRun(100, func() { _ = off.City(v4); _ = off.ASN(v4) }); n != 0 {
		t.Errorf("disabled lookup allocates: %v", n)
	}
	// Not found needs no string building either.
	nf := NewLookup(cityDB(t), ispDB(t), 0)
	unk := raw("6.6.6.6")
	if n := testing.AllocsPerRun(100, func() { _ = nf.City(unk); _ = nf.ASN(unk) }); n != 0 {
		t.Errorf("not-found miss allocates: %v", n)
	}
}

// One DB shared by workers, each with its own Lookup (run with -race).
func TestConcurrentWorkers(t *testing.T) {
	city, isp := cityDB(t), ispDB(t)
	addrs := [][]byte{raw("89.160.20.112"), raw("216.160.83.56"), raw("2a02:dac0::"), raw("1.128.0.0"), raw("6.6.6.6")}
	ref := NewLookup(city, isp, 0)
	wantCity := make([]City, len(addrs))
	wantASN := make([]string, len(addrs))
	for i, a := range addrs {
		wantCity[i], wantASN[i] = ref.City(a), ref.ASN(a)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			l := NewLookup(city, isp, w%3) // sizes 0, 1, 2: misses, hits, evictions
			for i := range 2000 {
				k := i % len(addrs)
				if got := l.City(addrs[k]); got != wantCity[k] {
					t.Errorf("worker %d: City = %+v, want %+v", w, got, wantCity[k])
					return
				}
				if got := l.ASN(addrs[k]); got != wantASN[k] {
					t.Errorf("worker %d: ASN = %q, want %q", w, got, wantASN[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestLookupAfterClose(t *testing.T) {
	path := filepath.Join(testdataDir, "GeoIP2-City-Test.mmdb")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("test database not available: %v", err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if db.Type() != "GeoIP2-City" || db.Path() != path {
		t.Errorf("Type %q Path %q", db.Type(), db.Path())
	}
	l := NewLookup(db, nil, 10)
	a := raw("89.160.20.112")
	before := l.City(a)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Cached strings are copies: still valid after the map is gone.
	if got := l.City(a); got != before || got.Location != "EU/Sweden/E/Linköping" {
		t.Errorf("cached after close = %+v", got)
	}
	if got := l.City(raw("216.160.83.56")); got.Location != Unknown {
		t.Errorf("miss after close = %+v", got)
	}
}
