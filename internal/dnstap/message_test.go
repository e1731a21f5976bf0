package dnstap

import (
	"bytes"
	"errors"
	"testing"

	oracle "github.com/dnstap/golang-dnstap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// oracleMessage builds a realistic dnstap message with golang-dnstap's generated types.
func oracleMessage(i int) *oracle.Dnstap {
	mt := oracle.Message_Type(1 + i%14)
	fam := oracle.SocketFamily(1 + i%2)
	addrLen := 4
	if fam == oracle.SocketFamily_INET6 {
		addrLen = 16
	}
	qa := bytes.Repeat([]byte{byte(i)}, addrLen)
	ra := bytes.Repeat([]byte{byte(i + 1)}, addrLen)
	dnsQuery := []byte{byte(i >> 8), byte(i), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}
	m := &oracle.Message{
		Type:            &mt,
		SocketFamily:    &fam,
		SocketProtocol:  oracle.SocketProtocol(1 + i%4).Enum(),
		QueryAddress:    qa,
		ResponseAddress: ra,
		QueryPort:       proto.Uint32(uint32(1024 + i)),
		ResponsePort:    proto.Uint32(53),
		QueryTimeSec:    proto.Uint64(uint64(1700000000 + i)),
		QueryTimeNsec:   proto.Uint32(uint32(i * 1000)),
		QueryMessage:    dnsQuery,
	}
	if mt%2 == 0 {
		resp := append([]byte(nil), dnsQuery...)
		resp[2] |= 0x80
		m.ResponseMessage = resp
		m.ResponseTimeSec = proto.Uint64(uint64(1700000000 + i))
		m.ResponseTimeNsec = proto.Uint32(uint32(i*1000 + 500))
	}
	if i%3 == 0 {
		m.QueryZone = []byte{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0}
	}
	return &oracle.Dnstap{
		Identity: []byte("resolver-1"),
		Version:  []byte("unbound 1.17.1"),
		Type:     oracle.Dnstap_MESSAGE.Enum(),
		Message:  m,
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{AllowPartial: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareOracle checks every field ours decoded against the oracle's decoding of the same
// bytes, presence included.
func compareOracle(t testing.TB, got *Dnstap, want *oracle.Dnstap) {
	t.Helper()
	eqb := func(name string, has bool, g, w []byte) {
		if has != (w != nil) || !bytes.Equal(g, w) {
			t.Errorf("%s: got %q (present %v), oracle %q", name, g, has, w)
		}
	}
	eqb("identity", got.Has(HasIdentity), got.Identity, want.Identity)
	eqb("version", got.Has(HasVersion), got.Version, want.Version)
	eqb("extra", got.Has(HasExtra), got.Extra, want.Extra)
	if got.Has(HasDnstapType) != (want.Type != nil) || int32(got.Type) != int32(want.GetType()) {
		t.Errorf("type: got %d, oracle %v", got.Type, want.Type)
	}
	if got.Has(HasMessage) != (want.Message != nil) {
		t.Fatalf("message presence: got %v, oracle %v", got.Has(HasMessage), want.Message != nil)
	}
	if want.Message == nil {
		return
	}
	wm, m := want.Message, &got.Message
	type num struct {
		name    string
		has     bool
		g, w    uint64
		present bool
	}
	for _, c := range []num{
		{"message.type", got.Has(HasType), uint64(m.Type), uint64(wm.GetType()), wm.Type != nil},
		{"socket_family", got.Has(HasSocketFamily), uint64(m.SocketFamily), uint64(wm.GetSocketFamily()), wm.SocketFamily != nil},
		{"socket_protocol", got.Has(HasSocketProtocol), uint64(m.SocketProtocol), uint64(wm.GetSocketProtocol()), wm.SocketProtocol != nil},
		{"query_port", got.Has(HasQueryPort), uint64(m.QueryPort), uint64(wm.GetQueryPort()), wm.QueryPort != nil},
		{"response_port", got.Has(HasResponsePort), uint64(m.ResponsePort), uint64(wm.GetResponsePort()), wm.ResponsePort != nil},
		{"query_time_sec", got.Has(HasQueryTimeSec), m.QueryTimeSec, wm.GetQueryTimeSec(), wm.QueryTimeSec != nil},
		{"query_time_nsec", got.Has(HasQueryTimeNsec), uint64(m.QueryTimeNsec), uint64(wm.GetQueryTimeNsec()), wm.QueryTimeNsec != nil},
		{"response_time_sec", got.Has(HasResponseTimeSec), m.ResponseTimeSec, wm.GetResponseTimeSec(), wm.ResponseTimeSec != nil},
		{"response_time_nsec", got.Has(HasResponseTimeNsec), uint64(m.ResponseTimeNsec), uint64(wm.GetResponseTimeNsec()), wm.ResponseTimeNsec != nil},
	} {
		if c.has != c.present || c.g != c.w {
			t.Errorf("%s: got %d (present %v), oracle %d (present %v)", c.name, c.g, c.has, c.w, c.present)
		}
	}
	eqb("query_address", got.Has(HasQueryAddress), m.QueryAddress, wm.QueryAddress)
	eqb("response_address", got.Has(HasResponseAddress), m.ResponseAddress, wm.ResponseAddress)
	eqb("query_message", got.Has(HasQueryMessage), m.QueryMessage, wm.QueryMessage)
	eqb("query_zone", got.Has(HasQueryZone), m.QueryZone, wm.QueryZone)
	eqb("response_message", got.Has(HasResponseMessage), m.ResponseMessage, wm.ResponseMessage)
	if m.Type.String() != wm.GetType().String() {
		t.Errorf("type name %s, oracle %s", m.Type, wm.GetType())
	}
}

func TestUnmarshalAgainstOracle(t *testing.T) {
	var d Dnstap
	for i := range 200 {
		want := oracleMessage(i)
		b := mustMarshal(t, want)
		if err := d.Unmarshal(b); err != nil {
			t.Fatalf("msg %d: %v", i, err)
		}
		compareOracle(t, &d, want)
		if !d.IsMessage() {
			t.Fatalf("msg %d: IsMessage false", i)
		}
	}
}

// Fields golang-dnstap v0.4.0 does not know (policy, http_protocol, the new protocols) are
// checked against protowire encodings written field by field from dnstap.proto.
func TestUnmarshalNewFields(t *testing.T) {
	var pol []byte
	pol = protowire.AppendTag(pol, 1, protowire.BytesType)
	pol = protowire.AppendString(pol, "rpz")
	pol = protowire.AppendTag(pol, 2, protowire.BytesType)
	pol = protowire.AppendBytes(pol, []byte("bad.example.rpz."))
	pol = protowire.AppendTag(pol, 3, protowire.VarintType)
	pol = protowire.AppendVarint(pol, 1) // NXDOMAIN
	pol = protowire.AppendTag(pol, 4, protowire.VarintType)
	pol = protowire.AppendVarint(pol, 1) // QNAME
	pol = protowire.AppendTag(pol, 5, protowire.BytesType)
	pol = protowire.AppendBytes(pol, []byte("bad.example."))
	var msg []byte
	msg = protowire.AppendTag(msg, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 6)
	msg = protowire.AppendTag(msg, 3, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 7) // DOQ
	msg = protowire.AppendTag(msg, 15, protowire.BytesType)
	msg = protowire.AppendBytes(msg, pol)
	msg = protowire.AppendTag(msg, 16, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 2) // HTTP2
	var top []byte
	top = protowire.AppendTag(top, 15, protowire.VarintType)
	top = protowire.AppendVarint(top, 1)
	top = protowire.AppendTag(top, 14, protowire.BytesType)
	top = protowire.AppendBytes(top, msg)

	var d Dnstap
	if err := d.Unmarshal(top); err != nil {
		t.Fatal(err)
	}
	m := d.Message
	if m.Type != ClientResponse || m.Type.String() != "CLIENT_RESPONSE" || !m.Type.IsResponse() {
		t.Errorf("type %v", m.Type)
	}
	if m.SocketProtocol != ProtocolDOQ || m.SocketProtocol.String() != "DOQ" {
		t.Errorf("protocol %v", m.SocketProtocol)
	}
	if m.HTTPProtocol != HTTP2 || !d.Has(HasHTTPProtocol|HasPolicy) {
		t.Errorf("http %v", m.HTTPProtocol)
	}
	p := m.Policy
	if string(p.Type) != "rpz" || string(p.Rule) != "bad.example.rpz." || p.Action != 1 || p.Match != 1 || string(p.Value) != "bad.example." {
		t.Errorf("policy %+v", p)
	}
	// The oracle, which lacks these fields, must still accept the frame (skipped as unknown).
	var o oracle.Dnstap
	if err := proto.Unmarshal(top, &o); err != nil || o.GetMessage().GetType() != oracle.Message_CLIENT_RESPONSE {
		t.Errorf("oracle: %v %v", err, o.GetMessage().GetType())
	}
}

func TestUnmarshalEdgeCases(t *testing.T) {
	base := mustMarshal(t, oracleMessage(5))
	noType := mustMarshal(t, &oracle.Dnstap{Identity: []byte("x"), Message: oracleMessage(5).Message})
	noMsgType := mustMarshal(t, &oracle.Dnstap{Type: oracle.Dnstap_MESSAGE.Enum(), Message: &oracle.Message{QueryPort: proto.Uint32(9)}})
	// A known field with the wrong wire type (identity as varint) is skipped, as protobuf-go does.
	wrongWire := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), base...), 1, protowire.VarintType), 7)
	// Two occurrences of message merge: the second sets only query_port.
	second := protowire.AppendTag(nil, 14, protowire.BytesType)
	second = protowire.AppendBytes(second, protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.VarintType), 4242))
	merged := append(append([]byte(nil), base...), second...)
	// Unknown fields of every wire type, groups included.
	var unk []byte
	unk = protowire.AppendVarint(protowire.AppendTag(unk, 100, protowire.VarintType), 1)
	unk = protowire.AppendFixed64(protowire.AppendTag(unk, 101, protowire.Fixed64Type), 1)
	unk = protowire.AppendFixed32(protowire.AppendTag(unk, 102, protowire.Fixed32Type), 1)
	unk = protowire.AppendBytes(protowire.AppendTag(unk, 103, protowire.BytesType), []byte("zz"))
	unk = protowire.AppendTag(unk, 104, protowire.StartGroupType)
	unk = protowire.AppendVarint(protowire.AppendTag(unk, 1, protowire.VarintType), 1)
	unk = protowire.AppendTag(unk, 104, protowire.EndGroupType)
	unknown := append(unk, base...)

	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"valid", base, nil},
		{"empty", nil, ErrRequiredMissing},
		{"no dnstap type", noType, ErrRequiredMissing},
		{"no message type", noMsgType, ErrRequiredMissing},
		{"wrong wire type skipped", wrongWire, nil},
		{"merged messages", merged, nil},
		{"unknown fields", unknown, nil},
		{"truncated", base[:len(base)-3], ErrMalformed},
		{"bad varint", []byte{0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, ErrMalformed},
		{"field zero", []byte{0x00, 0x01}, ErrMalformed},
		{"lone end group", []byte{0x0c}, ErrMalformed},
		{"bytes overrun", []byte{0x0a, 0x05, 'a'}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Dnstap
			err := d.Unmarshal(tc.in)
			var o oracle.Dnstap
			oerr := proto.Unmarshal(tc.in, &o)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			// The oracle must agree on success/failure (required fields included).
			if (err == nil) != (oerr == nil) {
				t.Fatalf("ours %v, oracle %v", err, oerr)
			}
			if err == nil || errors.Is(err, ErrRequiredMissing) {
				if oerr != nil {
					o.Reset()
					if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(tc.in, &o); err != nil {
						t.Fatal(err)
					}
				}
				compareOracle(t, &d, &o)
			}
		})
	}
}

func TestMessageTypeNames(t *testing.T) {
	// The names must be the proto enum's, as golang-dnstap's generated String() spells them.
	for i := int32(0); i <= 16; i++ {
		want := oracle.Message_Type(i).String()
		if i == 0 || i > 14 {
			want = oracle.Message_Type(i).String() // numeric for unknown values in both
		}
		if got := MessageType(i).String(); got != want {
			t.Errorf("%d: %q, oracle %q", i, got, want)
		}
		q, r := MessageType(i).IsQuery(), MessageType(i).IsResponse()
		name := MessageType(i).String()
		if q != bytes.HasSuffix([]byte(name), []byte("_QUERY")) || r != bytes.HasSuffix([]byte(name), []byte("_RESPONSE")) {
			t.Errorf("%s: IsQuery %v IsResponse %v", name, q, r)
		}
	}
	for i := int32(1); i <= 4; i++ {
		if got, want := SocketProtocol(i).String(), oracle.SocketProtocol(i).String(); got != want {
			t.Errorf("protocol %d: %q, oracle %q", i, got, want)
		}
	}
	for i := int32(1); i <= 2; i++ {
		if got, want := SocketFamily(i).String(), oracle.SocketFamily(i).String(); got != want {
			t.Errorf("family %d: %q, oracle %q", i, got, want)
		}
	}
}

func TestUnmarshalNoAllocs(t *testing.T) {
	b := mustMarshal(t, oracleMessage(6))
	var d Dnstap
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per message", allocs)
	}
	bad := b[:len(b)-2]
	allocs = testing.AllocsPerRun(1000, func() { _ = d.Unmarshal(bad) })
	if allocs != 0 {
		t.Fatalf("%v allocs per malformed message", allocs)
	}
}
