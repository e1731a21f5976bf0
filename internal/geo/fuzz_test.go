package geo

import (
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

// FuzzLookup: any byte string as an address never panics, and cached and uncached lookups
// agree (the cache key must distinguish everything the lookup does).
func FuzzLookup(f *testing.F) {
	for _, s := range []string{"89.160.20.112", "2a02:dac0::", "1.128.0.0", "2401:8080::", "6.6.6.6", "::ffff:89.160.20.112", "::"} {
		f.Add(raw(s))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	city, isp := cityDB(f), ispDB(f)
	cached := NewLookup(city, isp, 32)
	uncached := NewLookup(city, isp, 0)
	f.Fuzz(func(t *testing.T, addr []byte) {
		c1, c2 := cached.City(addr), uncached.City(addr)
		if c1 != c2 {
			t.Fatalf("City(%x): cached %+v, uncached %+v", addr, c1, c2)
		}
		a1, a2 := cached.ASN(addr), uncached.ASN(addr)
		if a1 != a2 {
			t.Fatalf("ASN(%x): cached %q, uncached %q", addr, a1, a2)
		}
		if len(addr) != 4 && len(addr) != 16 && (c1.Location != Unknown || a1 != Unknown) {
			t.Fatalf("malformed address %x answered %+v %q", addr, c1, a1)
		}
	})
}

// FuzzRecord: an arbitrary data section (the record is whatever the bytes encode, pointers
// and all) must never make the cursor walker panic or loop. The database is operator-supplied,
// but a truncated or corrupt download must not take the agent down.
func FuzzRecord(f *testing.F) {
	f.Add(encode(nil, mMap{
		{"continent", mMap{{"code", "EU"}}},
		{"country", mMap{{"iso_code", "SE"}, {"names", mMap{{"en", "Sweden"}}}}},
		{"subdivisions", mArr{mMap{{"iso_code", "E"}}}},
		{"city", mMap{{"names", mMap{{"en", "Linköping"}}}}},
		{"location", mMap{{"latitude", mDouble(58.4167)}, {"longitude", mDouble(15.6167)}}},
	}))
	f.Add(encode(nil, mMap{{"autonomous_system_number", mUint32(1221)}, {"autonomous_system_organization", "Telstra Pty Ltd"}}))
	// A pointer (type 1) to offset 0: a record that points at itself.
	f.Add([]byte{0x20, 0x00})
	// A map whose value is a pointer back into the map.
	f.Add([]byte{0xe1, 0x43, 'a', 'b', 'c', 0x20, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := maxminddb.OpenBytes(buildDB(data))
		if err != nil {
			t.Skip(err)
		}
		db := &DB{r: r}
		l := NewLookup(db, db, 0)
		_ = l.City(raw("200.1.2.3"))
		_ = l.ASN(raw("200.1.2.3"))
	})
}
