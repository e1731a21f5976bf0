// Package handlertest holds what the handlers' codec tests share: rendering a spec's
// selection to comparable text (JSON and Prometheus), a readable diff, a reflection walk that
// says which bucket fields hold data, the GeoIP test databases and a foreign handler instance.
// It is imported by tests only.
package handlertest

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"unsafe"

	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/geo"
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
	"github.com/pktvisor-go/pktvisor/internal/sketch"
)

// TestdataDir holds the reference system's test files (absent on some machines).
const TestdataDir = "/work/shared/testdata/pktvisor"

// Render renders the selection of the instances with s as JSON (period, live flag and the
// schema's object) followed by the Prometheus text: two renders equal means equal numbers.
func Render(t testing.TB, s handler.Spec, insts []handler.Handler, sel metrics.Selection) string {
	t.Helper()
	j := metrics.NewJSON()
	rp, err := s.Render(insts, sel, j, 0)
	if err != nil {
		t.Fatalf("render %+v: %v", sel, err)
	}
	p := metrics.NewProm("test")
	if _, err := s.Render(insts, sel, p, 0); err != nil {
		t.Fatal(err)
	}
	var prom bytes.Buffer
	if _, err := p.WriteTo(&prom); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(map[string]any{"period": rp.JSON(), "live": rp.Live, s.Schema(): j.Root})
	if err != nil {
		t.Fatal(err)
	}
	return string(js) + "\n" + prom.String()
}

// Diff is "" for equal strings, else where they first differ with some context.
func Diff(a, b string) string {
	if a == b {
		return ""
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-150)
	return "first difference at byte " + strconv.Itoa(i) + ":\n  got  …" + a[lo:min(len(a), i+150)] + "\n  want …" + b[lo:min(len(b), i+150)]
}

// FieldStates reports, for every field of the bucket b points to (nested structs flattened,
// as "outer.inner"), whether it holds data; by reflection, so that a field added to a bucket
// later shows up (it panics on a field type it does not know).
func FieldStates(b any) map[string]bool {
	out := map[string]bool{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f := v.Field(i)
			name := prefix + v.Type().Field(i).Name
			p := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Interface()
			switch x := p.(type) {
			case *uint64:
				out[name] = *x != 0
			case *sketch.Rate:
				out[name] = x.Count() > 0
			case *sketch.Cardinality:
				out[name] = x.Estimate() > 0
			case *sketch.Quantiles:
				out[name] = x.Count() > 0
			case *sketch.TopN:
				out[name] = x.Len() > 0
			case *sketch.Counts16:
				out[name] = x.Total() > 0
			case *sketch.Histogram:
				out[name] = x.Count() > 0
			default:
				if f.Kind() != reflect.Struct {
					panic("FieldStates: unhandled field " + name + " of type " + f.Type().String())
				}
				walk(name+".", f)
			}
		}
	}
	walk("", reflect.ValueOf(b).Elem())
	return out
}

// GeoDBs opens the reference's GeoIP City and ISP test databases, or returns nils when they
// are absent.
func GeoDBs(t testing.TB) (city, asn *geo.DB) {
	t.Helper()
	var dbs [2]*geo.DB
	for i, name := range []string{"GeoIP2-City-Test.mmdb", "GeoIP2-ISP-Test.mmdb"} {
		path := filepath.Join(TestdataDir, name)
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
		db, err := geo.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
	}
	return dbs[0], dbs[1]
}

// Foreign is a handler instance of no handler's type: MergeBucket must refuse it.
type Foreign struct{ handler.Nop }

func (Foreign) Wants() handler.Wants { return 0 }
func (Foreign) Shift(int64)          {}
func (Foreign) Start(int64)          {}
func (Foreign) End(int64)            {}

// CheckTopBound checks two top-N sketches of the same stream merged in different orders:
// same total weight, errors within the sketch's bound, and overlapping [Lower, Estimate]
// intervals (both bracket the true weight: [Lower, Lower+MaxError]). i names the sketch.
func CheckTopBound(t testing.TB, i int, a, b *sketch.TopN) {
	t.Helper()
	if a.Total() != b.Total() {
		t.Errorf("top %d: totals %d and %d", i, a.Total(), b.Total())
	}
	bound := a.Total() / uint64((a.MaxItems()+2)/2)
	if a.MaxError() > bound || b.MaxError() > bound {
		t.Errorf("top %d: errors %d and %d above the bound %d", i, a.MaxError(), b.MaxError(), bound)
	}
	lower := map[string]uint64{}
	for _, it := range b.Items(-1, nil) {
		lower[it.Key] = it.Lower
	}
	for _, it := range a.Items(-1, nil) {
		if l, ok := lower[it.Key]; ok && (l > it.Estimate || it.Lower > l+b.MaxError()) {
			t.Errorf("top %d: key %q: [%d, %d] and [%d, %d] do not overlap", i, it.Key, it.Lower, it.Estimate, l, l+b.MaxError())
		}
	}
}

// Frame is one captured frame of a SliceSource.
type Frame struct {
	Data []byte
	Info capture.PacketInfo
}

// SliceSource is a stream source over frames in memory.
type SliceSource struct {
	Frames []Frame
	i      int
}

// Next returns the next frame, io.EOF after the last.
func (s *SliceSource) Next() ([]byte, capture.PacketInfo, error) {
	if s.i == len(s.Frames) {
		return nil, capture.PacketInfo{}, io.EOF
	}
	s.i++
	f := &s.Frames[s.i-1]
	return f.Data, f.Info, nil
}
