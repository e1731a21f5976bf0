package bucketwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sample() (*Header, [][]byte) {
	h := &Header{Instance: "pop1", AgentVersion: "4.0.0", Policy: "default", Bucket: 1,
		Period: Period{StartTS: 1_800_000_000, Length: 60}, Drops: Drops{OS: 3, If: 1},
		Handlers: []Handler{
			{Name: "default-eth0-dns", Tap: "eth0", Module: "dns", Type: "dns", Version: "1.0", Schema: "dns",
				Config: map[string]any{"topn_count": 10.0, "only_qtype": []any{"A"}}},
			{Name: "default-eth0-net", Tap: "eth0", Module: "net", Type: "net", Version: "1.0", Schema: "packets"},
		}}
	return h, [][]byte{{'D', 1, 2, 3}, {}}
}

func TestRoundTrip(t *testing.T) {
	h, b := sample()
	data, err := Append([]byte("prefix"), h, b)
	if err != nil {
		t.Fatal(err)
	}
	gh, gb, err := Decode(data[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gh, h) {
		t.Errorf("header %+v, want %+v", gh, h)
	}
	if len(gb) != 2 || !bytes.Equal(gb[0], b[0]) || len(gb[1]) != 0 {
		t.Errorf("buckets %q, want %q", gb, b)
	}
}

func TestDecodeErrors(t *testing.T) {
	h, b := sample()
	good, _ := Append(nil, h, b)
	cases := map[string][]byte{
		"empty":        nil,
		"magic":        append([]byte("PVSX"), good[4:]...),
		"version":      append(append([]byte("PVSK"), 2), good[5:]...),
		"trailing":     append(append([]byte{}, good...), 0),
		"header json":  append([]byte("PVSK\x01\x03"), "{x}"...),
		"header len":   []byte("PVSK\x01\xff\xff\xff\xff\x0f"),
		"bad varint":   []byte("PVSK\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"huge handler": append([]byte("PVSK\x01\x0f"), `{"handlers":[{}]}`...),
	}
	for i := range len(good) { // every truncation
		cases["truncated at "+string(rune('0'+i%10))+"/"+string(rune('a'+i/10%26))] = good[:i]
	}
	for name, data := range cases {
		if _, _, err := Decode(data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
	if _, err := Append(nil, h, b[:1]); err == nil {
		t.Error("Append with a missing bucket: no error")
	}
}

func FuzzDecode(f *testing.F) {
	h, b := sample()
	good, _ := Append(nil, h, b)
	f.Add(good)
	f.Add([]byte("PVSK\x01\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, b, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Append(nil, h, b)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, _, err := Decode(again); err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
	})
}
