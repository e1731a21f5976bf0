package dnstap

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Errors returned (wrapped) by Dnstap.Unmarshal.
var (
	// ErrMalformed: the bytes are not a valid protobuf encoding.
	ErrMalformed = errors.New("dnstap: malformed protobuf")
	// ErrRequiredMissing: a proto2 required field (Dnstap.type, Message.type) is absent.
	// The struct is still filled with what was present, as protobuf's AllowPartial would.
	ErrRequiredMissing = errors.New("dnstap: required field missing")

	// Built once: a flood of bad frames must not allocate an error each.
	errBadTag        = fmt.Errorf("%w: invalid tag", ErrMalformed)
	errBadField      = fmt.Errorf("%w: truncated or invalid field", ErrMalformed)
	errNoDnstapType  = fmt.Errorf("%w: Dnstap.type", ErrRequiredMissing)
	errNoMessageType = fmt.Errorf("%w: Message.type", ErrRequiredMissing)
)

// DnstapType is Dnstap.Type; MESSAGE is the only value defined.
type DnstapType int32

// TypeMessage is Dnstap.Type MESSAGE.
const TypeMessage DnstapType = 1

// MessageType is Message.Type (dnstap.proto), e.g. CLIENT_QUERY.
type MessageType int32

// Message types, numbered as in dnstap.proto.
const (
	AuthQuery         MessageType = 1
	AuthResponse      MessageType = 2
	ResolverQuery     MessageType = 3
	ResolverResponse  MessageType = 4
	ClientQuery       MessageType = 5
	ClientResponse    MessageType = 6
	ForwarderQuery    MessageType = 7
	ForwarderResponse MessageType = 8
	StubQuery         MessageType = 9
	StubResponse      MessageType = 10
	ToolQuery         MessageType = 11
	ToolResponse      MessageType = 12
	UpdateQuery       MessageType = 13
	UpdateResponse    MessageType = 14
)

var messageTypeNames = [...]string{"", "AUTH_QUERY", "AUTH_RESPONSE", "RESOLVER_QUERY",
	"RESOLVER_RESPONSE", "CLIENT_QUERY", "CLIENT_RESPONSE", "FORWARDER_QUERY",
	"FORWARDER_RESPONSE", "STUB_QUERY", "STUB_RESPONSE", "TOOL_QUERY", "TOOL_RESPONSE",
	"UPDATE_QUERY", "UPDATE_RESPONSE"}

// String returns the proto enum name (CLIENT_QUERY), or the number for unknown values.
func (t MessageType) String() string {
	if t > 0 && int(t) < len(messageTypeNames) {
		return messageTypeNames[t]
	}
	return strconv.Itoa(int(t))
}

// IsQuery reports whether t is one of the *_QUERY types (odd numbers in dnstap.proto).
func (t MessageType) IsQuery() bool { return t >= AuthQuery && t <= UpdateResponse && t%2 == 1 }

// IsResponse reports whether t is one of the *_RESPONSE types.
func (t MessageType) IsResponse() bool { return t >= AuthQuery && t <= UpdateResponse && t%2 == 0 }

// SocketFamily is Message.socket_family.
type SocketFamily int32

// Socket families.
const (
	FamilyINET  SocketFamily = 1
	FamilyINET6 SocketFamily = 2
)

// String returns the proto enum name.
func (f SocketFamily) String() string {
	switch f {
	case FamilyINET:
		return "INET"
	case FamilyINET6:
		return "INET6"
	}
	return strconv.Itoa(int(f))
}

// SocketProtocol is Message.socket_protocol.
type SocketProtocol int32

// Socket protocols (the last three were added to dnstap.proto after golang-dnstap v0.4.0).
const (
	ProtocolUDP         SocketProtocol = 1
	ProtocolTCP         SocketProtocol = 2
	ProtocolDOT         SocketProtocol = 3
	ProtocolDOH         SocketProtocol = 4
	ProtocolDNSCryptUDP SocketProtocol = 5
	ProtocolDNSCryptTCP SocketProtocol = 6
	ProtocolDOQ         SocketProtocol = 7
)

var protocolNames = [...]string{"", "UDP", "TCP", "DOT", "DOH", "DNSCryptUDP", "DNSCryptTCP", "DOQ"}

// String returns the proto enum name.
func (p SocketProtocol) String() string {
	if p > 0 && int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return strconv.Itoa(int(p))
}

// HTTPProtocol is Message.http_protocol (DoH only).
type HTTPProtocol int32

// HTTP protocols.
const (
	HTTP1 HTTPProtocol = 1
	HTTP2 HTTPProtocol = 2
	HTTP3 HTTPProtocol = 3
)

// Field is a bit naming an optional field, for Message.Has / Dnstap.Has.
type Field uint32

// Presence bits. proto2 fields have presence: a zero time or port differs from an absent one.
const (
	HasIdentity Field = 1 << iota
	HasVersion
	HasExtra
	HasDnstapType
	HasMessage
	HasType
	HasSocketFamily
	HasSocketProtocol
	HasQueryAddress
	HasResponseAddress
	HasQueryPort
	HasResponsePort
	HasQueryTimeSec
	HasQueryTimeNsec
	HasQueryMessage
	HasQueryZone
	HasResponseTimeSec
	HasResponseTimeNsec
	HasResponseMessage
	HasPolicy
	HasHTTPProtocol
)

// Policy is Message.policy (RPZ and similar decisions). Byte fields alias the frame.
type Policy struct {
	Type   []byte // string type = 1
	Rule   []byte // bytes rule = 2
	Action int32  // enum Action action = 3 (NXDOMAIN=1 NODATA PASS DROP TRUNCATE LOCAL_DATA)
	Match  int32  // enum Match match = 4 (QNAME=1 CLIENT_IP RESPONSE_IP NS_NAME NS_IP)
	Value  []byte // bytes value = 5
}

// Message is dnstap.Message. Byte fields alias the decoded frame.
type Message struct {
	Type             MessageType
	SocketFamily     SocketFamily
	SocketProtocol   SocketProtocol
	QueryAddress     []byte // 4 or 16 bytes, network order
	ResponseAddress  []byte
	QueryPort        uint32
	ResponsePort     uint32
	QueryTimeSec     uint64
	QueryTimeNsec    uint32
	QueryMessage     []byte // DNS wire format
	QueryZone        []byte // DNS wire-format name
	ResponseTimeSec  uint64
	ResponseTimeNsec uint32
	ResponseMessage  []byte
	Policy           Policy
	HTTPProtocol     HTTPProtocol
}

// Dnstap is one decoded dnstap frame. Reuse one value across frames: Unmarshal resets it and
// allocates nothing; its byte fields alias the frame and are valid while the frame is.
type Dnstap struct {
	Identity []byte
	Version  []byte
	Extra    []byte
	Type     DnstapType
	Message  Message
	present  Field
}

// defaultDnstap holds proto2's defaults: an absent enum field reads as its first value (as
// generated getters and the reference's C++ accessors return); Has tells absent from set.
var defaultDnstap = Dnstap{
	Type: TypeMessage,
	Message: Message{Type: AuthQuery, SocketFamily: FamilyINET, SocketProtocol: ProtocolUDP,
		HTTPProtocol: HTTP1, Policy: Policy{Action: 1, Match: 1}},
}

// Has reports whether every field in f was present in the last decoded frame.
func (d *Dnstap) Has(f Field) bool { return d.present&f == f }

// IsMessage reports whether the frame is what the reference consumes: type MESSAGE with a
// message (spec §1.2: anything else is skipped).
func (d *Dnstap) IsMessage() bool {
	return d.Type == TypeMessage && d.Has(HasDnstapType|HasMessage)
}

// Unmarshal decodes b into d, following protobuf-go's rules so that it agrees with the
// generated code: unknown fields and known fields of an unexpected wire type are skipped, the
// last scalar wins, and repeated occurrences of a sub-message merge. It never panics and
// returns an error wrapping ErrMalformed or ErrRequiredMissing.
func (d *Dnstap) Unmarshal(b []byte) error {
	*d = defaultDnstap
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errBadTag
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			d.Identity, n = protowire.ConsumeBytes(b)
			d.present |= HasIdentity
		case num == 2 && typ == protowire.BytesType:
			d.Version, n = protowire.ConsumeBytes(b)
			d.present |= HasVersion
		case num == 3 && typ == protowire.BytesType:
			d.Extra, n = protowire.ConsumeBytes(b)
			d.present |= HasExtra
		case num == 15 && typ == protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			d.Type = DnstapType(int32(v))
			d.present |= HasDnstapType
		case num == 14 && typ == protowire.BytesType:
			var m []byte
			m, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				if err := d.unmarshalMessage(m); err != nil {
					return err
				}
				d.present |= HasMessage
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadField
		}
		b = b[n:]
	}
	if !d.Has(HasDnstapType) {
		return errNoDnstapType
	}
	if d.Has(HasMessage) && !d.Has(HasType) {
		return errNoMessageType
	}
	return nil
}

// unmarshalMessage decodes (merges) one occurrence of Dnstap.message.
func (d *Dnstap) unmarshalMessage(b []byte) error {
	m := &d.Message
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errBadTag
		}
		b = b[n:]
		var v uint64
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
			if n < 0 {
				break
			}
			switch num {
			case 1:
				m.Type, d.present = MessageType(int32(v)), d.present|HasType
			case 2:
				m.SocketFamily, d.present = SocketFamily(int32(v)), d.present|HasSocketFamily
			case 3:
				m.SocketProtocol, d.present = SocketProtocol(int32(v)), d.present|HasSocketProtocol
			case 6:
				m.QueryPort, d.present = uint32(v), d.present|HasQueryPort
			case 7:
				m.ResponsePort, d.present = uint32(v), d.present|HasResponsePort
			case 8:
				m.QueryTimeSec, d.present = v, d.present|HasQueryTimeSec
			case 12:
				m.ResponseTimeSec, d.present = v, d.present|HasResponseTimeSec
			case 16:
				m.HTTPProtocol, d.present = HTTPProtocol(int32(v)), d.present|HasHTTPProtocol
			}
		case protowire.Fixed32Type:
			var v32 uint32
			v32, n = protowire.ConsumeFixed32(b)
			if n < 0 {
				break
			}
			switch num {
			case 9:
				m.QueryTimeNsec, d.present = v32, d.present|HasQueryTimeNsec
			case 13:
				m.ResponseTimeNsec, d.present = v32, d.present|HasResponseTimeNsec
			}
		case protowire.BytesType:
			var s []byte
			s, n = protowire.ConsumeBytes(b)
			if n < 0 {
				break
			}
			switch num {
			case 4:
				m.QueryAddress, d.present = s, d.present|HasQueryAddress
			case 5:
				m.ResponseAddress, d.present = s, d.present|HasResponseAddress
			case 10:
				m.QueryMessage, d.present = s, d.present|HasQueryMessage
			case 11:
				m.QueryZone, d.present = s, d.present|HasQueryZone
			case 14:
				m.ResponseMessage, d.present = s, d.present|HasResponseMessage
			case 15:
				if err := unmarshalPolicy(&m.Policy, s); err != nil {
					return err
				}
				d.present |= HasPolicy
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadField
		}
		b = b[n:]
	}
	return nil
}

// unmarshalPolicy decodes (merges) one occurrence of Message.policy.
func unmarshalPolicy(p *Policy, b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errBadTag
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == 1 || num == 2 || num == 5):
			var s []byte
			s, n = protowire.ConsumeBytes(b)
			switch num {
			case 1:
				p.Type = s
			case 2:
				p.Rule = s
			default:
				p.Value = s
			}
		case typ == protowire.VarintType && (num == 3 || num == 4):
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			if num == 3 {
				p.Action = int32(v)
			} else {
				p.Match = int32(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errBadField
		}
		b = b[n:]
	}
	return nil
}
