package config

import (
	"reflect"
	"testing"
)

func TestScalarTyping(t *testing.T) {
	cases := []struct {
		in   string
		want any
	}{
		{"123", uint64(123)}, {"0", uint64(0)}, {"true", true}, {"FALSE", false}, {"TrUe", true},
		{"-1", "-1"}, {"1.5", "1.5"}, {"en7", "en7"}, {"", ""}, {"99999999999999999999999", "99999999999999999999999"},
	}
	for _, tc := range cases {
		if got := Scalar(tc.in); got != tc.want {
			t.Errorf("Scalar(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	m, err := Parse([]byte("iface: en7\nnumber: 123\nboolean: true\nlist: [a, 2]\nsub:\n  k: v\nnull_key:\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Map{"iface": "en7", "number": uint64(123), "boolean": true, "list": []string{"a", "2"}, "sub": Map{"k": "v"}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got %#v, want %#v", m, want)
	}
	if _, _, err := m.Uint("iface"); err == nil || err.Error() != "wrong type for key: iface" {
		t.Errorf("Uint on a string: %v", err)
	}
	if v, ok, err := m.Uint("number"); v != 123 || !ok || err != nil {
		t.Errorf("Uint: %v %v %v", v, ok, err)
	}
	if _, ok, _ := m.Bool("missing"); ok {
		t.Errorf("missing key reported present")
	}
	for _, bad := range []string{"- a\n- b\n", "a: [b: c]\n", "a: *x\n", "a: [\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

func TestCheckKeys(t *testing.T) {
	m := Map{"a": true, "enable": []string{"x"}, "zzz": uint64(1)}
	err := m.CheckKeys([]string{"a", "b"}, "enable")
	if err == nil || err.Error() != "zzz is an invalid/unsupported config or filter. The valid configs/filters are: a, b" {
		t.Errorf("CheckKeys: %v", err)
	}
	if err := (Map{"a": true}).CheckKeys([]string{"a"}); err != nil {
		t.Errorf("valid keys: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("a: 1\nb: [x, y]\nc:\n  d: true\n"))
	f.Add([]byte("{a: {b: {c: [1,2,3]}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		for k := range m {
			_, _, _ = m.Uint(k)
			_, _, _ = m.List(k)
		}
	})
}
