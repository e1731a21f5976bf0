package geo

import (
	"net/netip"
	"testing"
)

func BenchmarkCity(b *testing.B) {
	city := cityDB(b)
	cases := []struct {
		name  string
		cache int
		addr  []byte
	}{
		{"hit/v4", 100, raw("89.160.20.112")},
		{"hit/v6", 100, raw("2a02:dac0::")},
		{"miss/v4", 0, raw("89.160.20.112")},
		{"miss/v6", 0, raw("2a02:dac0::")},
		{"miss/notfound", 0, raw("6.6.6.6")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := NewLookup(city, nil, c.cache)
			l.City(c.addr)
			b.ReportAllocs()
			for b.Loop() {
				_ = l.City(c.addr)
			}
		})
	}
}

func BenchmarkASN(b *testing.B) {
	isp := ispDB(b)
	cases := []struct {
		name  string
		cache int
		addr  []byte
	}{
		{"hit/v4", 100, raw("1.128.0.0")},
		{"miss/v4", 0, raw("1.128.0.0")},
		{"miss/v6", 0, raw("2401:8080::")},
		{"miss/notfound", 0, raw("6.6.6.6")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := NewLookup(nil, isp, c.cache)
			l.ASN(c.addr)
			b.ReportAllocs()
			for b.Loop() {
				_ = l.ASN(c.addr)
			}
		})
	}
}

// A churning cache: more distinct addresses than entries, so every lookup misses and evicts.
func BenchmarkCityEvicting(b *testing.B) {
	city := cityDB(b)
	var addrs [][]byte
	for res := range city.r.Networks() {
		if p := res.Prefix(); p.Addr().Is4() {
			addrs = append(addrs, p.Addr().AsSlice())
		}
	}
	addrs = append(addrs, netip.MustParseAddr("6.6.6.6").AsSlice())
	l := NewLookup(city, nil, len(addrs)/2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = l.City(addrs[i%len(addrs)])
		i++
	}
}
