package metrics

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// KeyFormat turns a top-N key (bytes as the handler stored them) into its displayed row.
type KeyFormat func(key string) TopItem

// Lister is a top-N source: a frequent-items sketch or exact counts.
type Lister interface {
	Items(n int, dst []sketch.Item) []sketch.Item
}

// TopItems lists a top-N source as the reference does: every tracked item by estimate
// (descending, ties by key), cut to topn_count rows, then cut below the
// topn_percentile_threshold percentile of the remaining estimates.
func TopItems(t Lister, w Window, format KeyFormat) []TopItem {
	items := t.Items(w.TopNCount, nil)
	items = sketch.CutPercentile(items, uint64(w.TopNPercentile))
	var maxErr uint64
	if b, ok := t.(interface{ MaxError() uint64 }); ok {
		maxErr = b.MaxError()
	}
	out := make([]TopItem, 0, len(items))
	for _, it := range items {
		row := format(it.Key)
		row.Estimate, row.MaxError = it.Estimate, maxErr
		out = append(out, row)
	}
	return out
}

// Key formats shared by handlers.

// StringKey shows the key as it is.
func StringKey(key string) TopItem { return TopItem{Name: key} }

// IPKey shows a 4- or 16-byte address.
func IPKey(key string) TopItem {
	switch len(key) {
	case 4:
		return TopItem{Name: netip.AddrFrom4([4]byte([]byte(key))).String()}
	case 16:
		return TopItem{Name: netip.AddrFrom16([16]byte([]byte(key))).String()}
	}
	return TopItem{Name: key}
}

// Uint16Key shows a 2-byte big-endian number (ports) in decimal.
func Uint16Key(key string) TopItem {
	if len(key) != 2 {
		return TopItem{Name: key}
	}
	return TopItem{Name: strconv.Itoa(int(binary.BigEndian.Uint16([]byte(key))))}
}

// Uint16NameKey shows a 2-byte big-endian number through a name table (qtypes, rcodes).
func Uint16NameKey(name func(uint16) string) KeyFormat {
	return func(key string) TopItem {
		if len(key) != 2 {
			return TopItem{Name: key}
		}
		return TopItem{Name: name(binary.BigEndian.Uint16([]byte(key)))}
	}
}

// GeoKeySep separates location, latitude and longitude in a geo top-N key.
const GeoKeySep = "\x00"

// AppendGeoKey appends the top-N key of a location to dst.
func AppendGeoKey(dst []byte, c geo.City) []byte {
	dst = append(dst, c.Location...)
	dst = append(dst, GeoKeySep...)
	dst = append(dst, c.Lat...)
	dst = append(dst, GeoKeySep...)
	return append(dst, c.Lon...)
}

// GeoKey shows a location key built as location + GeoKeySep + lat + GeoKeySep + lon.
func GeoKey(key string) TopItem {
	parts := strings.SplitN(key, GeoKeySep, 3)
	row := TopItem{Name: parts[0]}
	if len(parts) == 3 {
		row.Lat, row.Lon = parts[1], parts[2]
	}
	return row
}
