package dnswire

import (
	"bytes"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/publicsuffix"
)

// AggregateDomain splits a (lower-cased) name into the reference's top_qname2 and
// top_qname3 keys (libs/visor_dns/dns.cpp aggregateDomain, spec §1.7): qname2 is the last two
// labels before the suffix with their leading dot (".bar.com" for "biz.foo.bar.com"), qname3
// the last three (".foo.bar.com"); the whole name stands in when there are not enough labels,
// and an empty qname3 (nil) means "do not count". suffixSize, when > 0 and shorter than the
// name, moves the split in front of a public or configured suffix of that many bytes
// (including its leading dot). Both results are subslices of name.
func AggregateDomain(name []byte, suffixSize int) (qname2, qname3 []byte) {
	n := len(name)
	if n < 5 {
		return name, nil
	}
	// endDot is the position from which the reference's rfind('.') searches backwards;
	// n means "the whole string" (std::string::npos).
	endDot := n
	if suffixSize > 0 && n > suffixSize {
		endDot = n - suffixSize
	} else if name[n-1] == '.' {
		endDot = n - 2
	}
	first := rfindDot(name, endDot)
	if first <= 0 {
		return name, name
	}
	second := rfindDot(name, first-1)
	if second < 0 {
		return name, nil
	}
	qname2 = name[second:]
	qname3 = name
	if second > 0 {
		if third := rfindDot(name, second-1); third >= 0 {
			qname3 = name[third:]
		}
	}
	return qname2, qname3
}

// rfindDot is std::string::rfind('.', pos): the last '.' at an index <= pos, or -1.
func rfindDot(b []byte, pos int) int {
	if pos < 0 {
		return -1
	}
	if pos >= len(b) {
		pos = len(b) - 1
	}
	return bytes.LastIndexByte(b[:pos+1], '.')
}

// PublicSuffixSize returns len(suffix)+1 for the ICANN public suffix of a lower-cased name
// ("co.uk" in "www.google.co.uk" gives 6), or 0 when no ICANN rule applies. It is the
// suffixSize argument of AggregateDomain for the public_suffix_list option.
//
// The list is golang.org/x/net/publicsuffix. A suffix from the list's private section
// ("blogspot.com") is not used: its first label is stripped and the rest looked up again
// until an ICANN suffix is found ("com"). Unlike the reference, which matched list entries
// with a plain ends_with, rules match whole labels.
//
// x/net's lookup allocates on every call (netip.ParseAddr's error), so results are kept in a
// fixed-size lock-free cache: a name whose last labels were seen before costs no allocation.
func PublicSuffixSize(name []byte) int {
	if len(name) == 0 {
		return 0
	}
	key, ok := psKey(name)
	slot := &psCache[key&(psCacheSize-1)]
	tag := key >> psValueBits
	if e := slot.Load(); e&psValid != 0 && e>>psValueBits == tag {
		return int(e & psValueMask)
	}
	// The string aliases the caller's bytes only for this call: just its length is kept.
	size := publicSuffixSize(unsafe.String(&name[0], len(name)))
	if ok {
		slot.Store(tag<<psValueBits | psValid | uint64(size))
	}
	return size
}

// publicSuffixSize is the uncached lookup.
func publicSuffixSize(s string) int {
	for s != "" {
		suffix, _ := publicsuffix.PublicSuffix(s)
		// x/net's icann result is the flag of the last tree node its walk visited, which can
		// be an intermediate node below the matched rule (golang/go#22959): for
		// "x.dualstack.us-east-1.amazonaws.com" it flags the private "us-east-1.amazonaws.com"
		// as ICANN. Looking up "!." + suffix instead ends the walk right at the rule's node
		// ("!" is in no list label), so its flag is the rule's own section; for a bare
		// top-level label with only wildcard rules ("jm") it is the wildcard's section.
		_, icann := publicsuffix.PublicSuffix("!." + suffix)
		if icann {
			return len(suffix) + 1
		}
		// A private-section suffix, or no rule at all (x/net then answers the last label):
		// look again without its first label.
		i := strings.IndexByte(suffix, '.')
		if i < 0 {
			return 0
		}
		s = suffix[i+1:]
	}
	return 0
}

// The cache maps a hash of the name's last psKeyLabels labels to the answer. The answer
// depends on no more labels than that: x/net walks the name from the right and stops after at
// most one label past its deepest rule, and no rule of the list has more than
// psMaxRuleLabels labels (TestPublicSuffixRuleDepth checks this against x/net's rule list).
// A name of psKeyLabels labels or fewer is keyed as a whole, in a separate key space, since
// x/net treats a whole name that parses as an IP address specially.
const (
	psMaxRuleLabels = 7
	psKeyLabels     = psMaxRuleLabels + 1
	psCacheSize     = 1 << 14 // entries; 128 KiB
	psValueBits     = 16
	psValueMask     = 1<<11 - 1 // answers are < nameBufLen
	psValid         = 1 << 15
)

var (
	psCache [psCacheSize]atomic.Uint64
	psSeed  = maphash.MakeSeed()
)

// psKey hashes the part of name that determines the answer. ok is false for names whose
// answer must not be cached (longer than an entry can hold).
func psKey(name []byte) (key uint64, ok bool) {
	if len(name) > psValueMask {
		return 0, false
	}
	start, labels := len(name), 0
	for labels < psKeyLabels {
		i := bytes.LastIndexByte(name[:start], '.')
		labels++
		if i < 0 {
			start = -1
			break
		}
		start = i
	}
	if start < 0 { // the whole name
		return maphash.Bytes(psSeed, name) ^ 0x9e3779b97f4a7c15, true
	}
	return maphash.Bytes(psSeed, name[start+1:]), true
}
