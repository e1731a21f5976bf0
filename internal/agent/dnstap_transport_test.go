package agent

import (
	"fmt"
	"net"
	"testing"
	"time"

	oracle "github.com/dnstap/golang-dnstap"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"
)

// transportMsg encodes (with the independent golang-dnstap types) one dnstap message of type typ
// over protocol proto, with a DNS message packed by miekg/dns; responses are NXDOMAIN.
func transportMsg(t *testing.T, typ oracle.Message_Type, proto_ oracle.SocketProtocol, id uint16, ts time.Time) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(fmt.Sprintf("t%d.example.org.", id), dns.TypeAAAA)
	m.Id = id
	resp := typ%2 == 0 // every *_RESPONSE type is even in dnstap.proto
	if resp {
		m.Response, m.Rcode = true, dns.RcodeNameError
	}
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	sec, nsec := uint64(ts.Unix()), uint32(ts.Nanosecond())
	port := uint32(40000 + id)
	msg := &oracle.Message{Type: &typ, SocketFamily: oracle.SocketFamily_INET6.Enum(), SocketProtocol: &proto_,
		QueryAddress: net.ParseIP("2001:db8::1"), ResponseAddress: net.ParseIP("2001:db8::53"), QueryPort: &port,
		ResponsePort: proto.Uint32(853)}
	if resp {
		msg.ResponseMessage, msg.ResponseTimeSec, msg.ResponseTimeNsec = wire, &sec, &nsec
		qsec := sec
		msg.QueryTimeSec, msg.QueryTimeNsec = &qsec, proto.Uint32(0)
	} else {
		msg.QueryMessage, msg.QueryTimeSec, msg.QueryTimeNsec = wire, &sec, &nsec
	}
	b, err := proto.Marshal(&oracle.Dnstap{Type: oracle.Dnstap_MESSAGE.Enum(), Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The encrypted transports a server reports in socket_protocol get their own counters
// (wire_packets.dot/doh/dnscrypt_udp/dnscrypt_tcp/doq, printed when not zero), and
// dnstap_msg_type keeps only its query/response pair of message types.
func TestDnstapTransportsAndMsgType(t *testing.T) {
	// golang-dnstap's dnstap.proto predates DNSCrypt and DoQ: 5, 6 and 7 are their numbers in
	// the current dnstap.proto.
	protos := []struct {
		p   oracle.SocketProtocol
		key string
		n   int // exchanges
	}{
		{oracle.SocketProtocol_UDP, "udp", 5}, {oracle.SocketProtocol_TCP, "tcp", 4},
		{oracle.SocketProtocol_DOT, "dot", 3}, {oracle.SocketProtocol_DOH, "doh", 6},
		{oracle.SocketProtocol(5), "dnscrypt_udp", 1}, {oracle.SocketProtocol(6), "dnscrypt_tcp", 2},
		{oracle.SocketProtocol(7), "doq", 7},
	}
	// Every exchange appears as CLIENT_QUERY/RESPONSE; the DoH ones also as AUTH_QUERY/RESPONSE
	// (as a server that logs both roles would).
	var frames [][]byte
	start := time.Unix(1_700_000_000, 0)
	id := uint16(0)
	for _, p := range protos {
		for range p.n {
			id++
			ts := start.Add(time.Duration(id) * 10 * time.Millisecond)
			frames = append(frames, transportMsg(t, oracle.Message_CLIENT_QUERY, p.p, id, ts),
				transportMsg(t, oracle.Message_CLIENT_RESPONSE, p.p, id, ts.Add(time.Millisecond)))
			if p.key == "doh" {
				frames = append(frames, transportMsg(t, oracle.Message_AUTH_QUERY, p.p, id, ts),
					transportMsg(t, oracle.Message_AUTH_RESPONSE, p.p, id, ts.Add(2*time.Millisecond)))
			}
		}
	}
	file := writeTapFile(t, frames)
	a, srv := newTestAgent(t)
	// One --config document: its file input starts once all its policies are attached (a
	// policy posted later would find the file already read).
	doc := fmt.Sprintf("visor:\n  taps:\n    tap:\n      input_type: dnstap\n      config:\n        dnstap_file: %q\n  policies:\n", file)
	for _, p := range []struct{ name, typ string }{{"all", ""}, {"auth", "auth"}, {"client", "client"}, {"resolver", "resolver"}} {
		cfg := ""
		if p.typ != "" {
			cfg = fmt.Sprintf("            config:\n              dnstap_msg_type: %s\n", p.typ)
		}
		doc += fmt.Sprintf("    %s:\n      kind: collection\n      input:\n        tap: tap\n        input_type: dnstap\n      handlers:\n        window_config:\n          num_periods: 1\n        modules:\n          dns:\n            type: dns\n%s", p.name, cfg)
	}
	if _, err := a.LoadConfig([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	waitInputsDone(t, a)

	wire := func(policy string) map[string]any {
		return schemaOf(t, policyBucket(t, srv.URL, policy), policy+"-tap-dns", "dns")["wire_packets"].(map[string]any)
	}
	xacts := func(policy string) any {
		x := schemaOf(t, policyBucket(t, srv.URL, policy), policy+"-tap-dns", "dns")["xact"].(map[string]any)
		return x["counts"].(map[string]any)["total"]
	}
	all, auth, client, resolver := wire("all"), wire("auth"), wire("client"), wire("resolver")
	total := 0
	for _, p := range protos {
		want := 2 * p.n
		if p.key == "doh" {
			want *= 2
		}
		total += want
		if got := all[p.key]; got != float64(want) {
			t.Errorf("all: wire_packets.%s = %v, want %d", p.key, got, want)
		}
		if got := client[p.key]; got != float64(2*p.n) {
			t.Errorf("client: wire_packets.%s = %v, want %d", p.key, got, 2*p.n)
		}
	}
	authN := 2 * 6 // the DoH exchanges logged as AUTH_*
	for _, c := range []struct {
		name                    string
		w                       map[string]any
		total, filtered, nx, qs float64
	}{
		{"all", all, float64(total), 0, float64(total / 2), float64(total / 2)},
		{"auth", auth, float64(authN), float64(total - authN), float64(authN / 2), float64(authN / 2)},
		{"client", client, float64(total - authN), float64(authN), float64((total - authN) / 2), float64((total - authN) / 2)},
		{"resolver", resolver, 0, float64(total), 0, 0},
	} {
		if c.w["total"] != c.total || c.w["filtered"] != c.filtered || c.w["nxdomain"] != c.nx || c.w["queries"] != c.qs || c.w["events"] != float64(total) {
			t.Errorf("%s: wire_packets %v; want total %v filtered %v nxdomain %v queries %v events %d", c.name, c.w, c.total, c.filtered, c.nx, c.qs, total)
		}
	}
	// Only the non-zero transports are printed.
	for _, k := range []string{"dot", "doh", "dnscrypt_udp", "dnscrypt_tcp", "doq"} {
		if _, ok := auth[k]; ok != (k == "doh") {
			t.Errorf("auth: wire_packets.%s printed = %v", k, ok)
		}
	}
	// Transactions pair within each message-type pair: every CLIENT exchange, and the AUTH ones.
	if got := xacts("client"); got != float64((total-authN)/2) {
		t.Errorf("client: xact.counts.total = %v, want %d", got, (total-authN)/2)
	}
	if got := xacts("auth"); got != float64(authN/2) {
		t.Errorf("auth: xact.counts.total = %v, want %d", got, authN/2)
	}
}
