package reader

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sharedDir is the reference system's test data, outside the repository.
var sharedDir = filepath.Join("..", "..", "..", "shared", "testdata", "pktvisor")

// fixture returns the path of a reference capture, skipping the test when it is absent.
func fixture(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(sharedDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference capture %s not available (%v): the ../shared test data is not present", name, err)
	}
	return p
}

// summarize runs the reader and returns its JSON document decoded generically (numbers as
// json.Number), exactly as a consumer of the output would see it.
func summarize(t testing.TB, o Options) map[string]any {
	t.Helper()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run(%s): %v", o.File, err)
	}
	raw, err := json.Marshal(res.Output)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

// lookup follows a dotted path ("1m.dns.top_qname2.0.name"); numeric parts index arrays.
func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, part := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[part]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// absent marks an expectation that a key or element must not exist.
type absentT struct{}

var absent = absentT{}

// present marks an expectation that a key must exist (any value).
type presentT struct{}

var present = presentT{}

// atLeast expects a number ≥ the value.
type atLeast float64

// oneOf expects a string among several (a top-N tie).
type oneOf []string

// contains expects a string containing the value.
type contains string

// within expects a number within ±tol of a value (cardinality estimates).
type within struct{ want, tol float64 }

func check(t *testing.T, doc any, want map[string]any) {
	t.Helper()
	for path, exp := range want {
		got, ok := lookup(doc, path)
		switch exp.(type) {
		case absentT:
			if ok {
				t.Errorf("%s: want absent, got %v", path, got)
			}
			continue
		case presentT:
			if !ok {
				t.Errorf("%s: want present, absent", path)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: absent, want %v", path, exp)
			continue
		}
		switch e := exp.(type) {
		case int:
			if n, ok := got.(json.Number); !ok || n.String() != strconv.Itoa(e) {
				t.Errorf("%s = %v, want %d", path, got, e)
			}
		case string:
			if s, ok := got.(string); !ok || s != e {
				t.Errorf("%s = %v, want %q", path, got, e)
			}
		case atLeast:
			if f := num(got); f < float64(e) {
				t.Errorf("%s = %v, want ≥ %v", path, got, float64(e))
			}
		case within:
			if f := num(got); f < e.want-e.tol || f > e.want+e.tol {
				t.Errorf("%s = %v, want %v ± %v", path, got, e.want, e.tol)
			}
		case oneOf:
			s, _ := got.(string)
			found := false
			for _, x := range e {
				found = found || x == s
			}
			if !found {
				t.Errorf("%s = %v, want one of %v", path, got, []string(e))
			}
		case contains:
			if s, _ := got.(string); !strings.Contains(s, string(e)) {
				t.Errorf("%s = %v, want it to contain %q", path, got, string(e))
			}
		default:
			panic(fmt.Sprintf("unknown expectation %T", exp))
		}
	}
}

func num(v any) float64 {
	n, ok := v.(json.Number)
	if !ok {
		return -1
	}
	f, err := n.Float64()
	if err != nil {
		return -1
	}
	return f
}
