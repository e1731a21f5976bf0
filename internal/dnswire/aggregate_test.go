package dnswire

import (
	"bufio"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestAggregateDomainReference holds every example of spec §6.18
// (libs/visor_dns/tests/test_dns.cpp), without and with a static suffix.
func TestAggregateDomainReference(t *testing.T) {
	tests := []struct {
		name, suffix string
		q2, q3       string
	}{
		{"biz.foo.bar.com", "", ".bar.com", ".foo.bar.com"},
		{"a.com", "", "a.com", ""},
		{"abcdefg.com.", "", "abcdefg.com.", ""},
		{"foo.bar.com", "", ".bar.com", "foo.bar.com"},
		{".", "", ".", ""},
		{"..", "", "..", ""},
		{"a", "", "a", ""},
		{"a.", "", "a.", ""},
		{"foo.bar.com.", "", ".bar.com.", "foo.bar.com."},
		{".foo.bar.com", "", ".bar.com", ".foo.bar.com"},
		{"a.b.c", "", ".b.c", "a.b.c"},
		{".b.c", "", ".b.c", ""},

		{"biz.foo.bar.com", ".bar.com", ".foo.bar.com", "biz.foo.bar.com"},
		{"biz.foo.bar.com", "bar.com", ".foo.bar.com", "biz.foo.bar.com"},
		{"biz.foo.bar.com", "foo.bar.com", "biz.foo.bar.com", ""},
		{"foo.bar.com.", "biz.foo.bar.com", ".bar.com.", "foo.bar.com."},
		{"www.google.co.uk", ".co.uk", ".google.co.uk", "www.google.co.uk"},
		{"www.google.co.uk", "google.co.uk", "www.google.co.uk", ""},

		// §1.7: no dot, or only a leading one, gives the whole name twice.
		{"abcde", "", "abcde", "abcde"},
		{".abcde", "", ".abcde", ".abcde"},
	}
	for _, tt := range tests {
		q2, q3 := AggregateDomain([]byte(tt.name), len(tt.suffix))
		if string(q2) != tt.q2 || string(q3) != tt.q3 {
			t.Errorf("AggregateDomain(%q, len(%q)) = (%q, %q), want (%q, %q)",
				tt.name, tt.suffix, q2, q3, tt.q2, tt.q3)
		}
	}
}

// TestAggregateDomainSubslices: results alias the input and are suffixes of it, for any
// input and suffix size.
func TestAggregateDomainSubslices(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab.")
	for range 20000 {
		name := make([]byte, r.IntN(12))
		for i := range name {
			name[i] = alphabet[r.IntN(len(alphabet))]
		}
		q2, q3 := AggregateDomain(name, r.IntN(14)-1)
		for _, q := range [][]byte{q2, q3} {
			if len(q) == 0 {
				continue
			}
			if !strings.HasSuffix(string(name), string(q)) || &q[len(q)-1] != &name[len(name)-1] {
				t.Fatalf("%q: result %q is not a suffix subslice", name, q)
			}
		}
	}
}

func TestPublicSuffixSize(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{"www.google.co.uk", len(".co.uk")},
		{"co.uk", len(".co.uk")},
		{"uk", len(".uk")},
		{"example.com", len(".com")},
		{"com", len(".com")},
		{"foo.blogspot.com", len(".com")}, // blogspot.com is in the private section
		{"a.b.foo.blogspot.co.uk", len(".co.uk")},
		{"city.kawasaki.jp", len(".kawasaki.jp")},        // exception rule !city.kawasaki.jp
		{"foo.bar.kawasaki.jp", len(".bar.kawasaki.jp")}, // wildcard rule *.kawasaki.jp
		{"foo.zzzunknowntld", 0},
		{"localhost", 0},
		{"", 0},
		{"1.2.3.4", 0},
		{"::1", 0},
		{"a..com", len(".com")},
		{"xn--85x722f.xn--55qx5d.cn", len(".xn--55qx5d.cn")}, // 公司.cn
	}
	for _, tt := range tests {
		for pass := range 2 { // miss, then cache hit
			if got := PublicSuffixSize([]byte(tt.name)); got != tt.want {
				t.Errorf("pass %d: PublicSuffixSize(%q) = %d, want %d", pass, tt.name, got, tt.want)
			}
		}
	}
	// With AggregateDomain, as the dns handler uses them.
	name := []byte("www.google.co.uk")
	q2, q3 := AggregateDomain(name, PublicSuffixSize(name))
	if string(q2) != ".google.co.uk" || string(q3) != "www.google.co.uk" {
		t.Errorf("aggregate with PSL: %q %q", q2, q3)
	}
}

// pslRules reads the rule list that golang.org/x/net/publicsuffix generated its table from
// (its table_test.go, in the module cache): the ICANN rules and the greatest label count.
func pslRules(t *testing.T) (icann map[string]bool, all []string, maxLabels int) {
	t.Helper()
	dir, err := xnetDir()
	if err != nil {
		t.Skipf("cannot locate golang.org/x/net: %v", err)
	}
	f, err := os.Open(filepath.Join(dir, "publicsuffix", "table_test.go"))
	if err != nil {
		t.Skipf("x/net rule list not available: %v", err)
	}
	defer f.Close()
	icann = map[string]bool{}
	numICANN, n := -1, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "const numICANNRules = "); ok {
			numICANN, _ = strconv.Atoi(v)
			continue
		}
		if !strings.HasPrefix(line, `"`) || !strings.HasSuffix(line, `",`) {
			continue
		}
		rule := strings.TrimSuffix(strings.TrimPrefix(line, `"`), `",`)
		maxLabels = max(maxLabels, strings.Count(rule, ".")+1)
		if n < numICANN {
			icann[rule] = true
		}
		all = append(all, rule)
		n++
	}
	if numICANN <= 0 || len(icann) != numICANN {
		t.Skipf("unexpected rule list format (%d ICANN rules of %d)", len(icann), numICANN)
	}
	return icann, all, maxLabels
}

var xnetDir = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/net").Output()
	return strings.TrimSpace(string(out)), err
})

// TestPublicSuffixRuleDepth guards the cache key: no rule may have more labels than the
// cache assumes.
func TestPublicSuffixRuleDepth(t *testing.T) {
	_, _, maxLabels := pslRules(t)
	if maxLabels > psMaxRuleLabels {
		t.Fatalf("the public suffix list has rules of %d labels; raise psMaxRuleLabels (%d)",
			maxLabels, psMaxRuleLabels)
	}
}

// icannSuffixLen is an independent implementation of the publicsuffix.org algorithm over the
// ICANN rules only: exception rules win, else the matching rule with the most labels. When no
// rule matches, a top-level label that ICANN rules end in counts as the suffix (like "za",
// which has only rules below it; the reference also fell back to the TLD), else 0.
func icannSuffixLen(rules map[string]bool, tlds map[string]bool, name string) int {
	labels := strings.Split(name, ".")
	best := 0
	for k := 1; k <= len(labels); k++ {
		suffix := strings.Join(labels[len(labels)-k:], ".")
		if rules["!"+suffix] {
			return len(strings.Join(labels[len(labels)-k+1:], ".")) + 1
		}
		if rules[suffix] {
			best = len(suffix) + 1
		}
		if k >= 2 && rules["*."+strings.Join(labels[len(labels)-k+1:], ".")] {
			best = len(suffix) + 1
		}
	}
	if best == 0 && tlds[labels[len(labels)-1]] {
		best = len(labels[len(labels)-1]) + 1
	}
	return best
}

// TestPublicSuffixSizeAgainstRules compares PublicSuffixSize (uncached and cached) with the
// independent implementation on names built from every rule (private ones included, which
// must resolve to the ICANN suffix under them), prefixed with random labels (some of them
// rule labels), and on random names.
func TestPublicSuffixSizeAgainstRules(t *testing.T) {
	icann, all, _ := pslRules(t)
	tlds := map[string]bool{}
	for rule := range icann {
		tlds[rule[strings.LastIndexByte(rule, '.')+1:]] = true
	}
	r := rand.New(rand.NewPCG(3, 4))
	prefixes := []string{"www", "a", "city", "blogspot", "co", "com", "xn--p1ai", "s3", "x-y", "1", "github", "us-east-1", "compute", "amazonaws"}
	var names []string
	for _, rule := range all {
		rule = strings.TrimPrefix(rule, "!")
		for range 2 {
			n := strings.ReplaceAll(rule, "*", prefixes[r.IntN(len(prefixes))])
			for range r.IntN(11) { // past the cache's 8-label key now and then
				n = prefixes[r.IntN(len(prefixes))] + "." + n
			}
			names = append(names, n)
		}
	}
	for range 5000 {
		var labels []string
		for range 1 + r.IntN(5) {
			labels = append(labels, prefixes[r.IntN(len(prefixes))])
		}
		names = append(names, strings.Join(labels, "."))
	}
	bad := 0
	for _, n := range names {
		want := icannSuffixLen(icann, tlds, n)
		if got := publicSuffixSize(n); got != want {
			if bad++; bad < 20 {
				t.Errorf("publicSuffixSize(%q) = %d, want %d", n, got, want)
			}
		}
		for pass := range 2 {
			if got := PublicSuffixSize([]byte(n)); got != want {
				if bad++; bad < 20 {
					t.Errorf("pass %d: PublicSuffixSize(%q) = %d, want %d", pass, n, got, want)
				}
			}
		}
	}
	t.Logf("%d names checked", len(names))
}

func TestPublicSuffixSizeCachedDoesNotAllocate(t *testing.T) {
	name := []byte("www.example.co.uk")
	PublicSuffixSize(name)
	if n := testing.AllocsPerRun(100, func() { PublicSuffixSize(name) }); n != 0 {
		t.Errorf("%v allocations on a cache hit", n)
	}
}

// TestPublicSuffixSizeConcurrent lets the race detector look at the shared cache.
func TestPublicSuffixSizeConcurrent(t *testing.T) {
	names := [][]byte{[]byte("a.example.com"), []byte("b.example.co.uk"), []byte("x.blogspot.com"), []byte("foo.bar.kawasaki.jp")}
	want := make([]int, len(names))
	for i, n := range names {
		want[i] = publicSuffixSize(string(n))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := (g + i) % len(names)
				if got := PublicSuffixSize(names[k]); got != want[k] {
					t.Errorf("%q: %d, want %d", names[k], got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}
