// Package bpf compiles tcpdump filter expressions (pcap-filter(7)) into classic BPF, in pure
// Go, and evaluates them on captured frames.
//
// The same program serves live capture (attached to an AF_PACKET socket: Ethernet frames)
// and capture files of any link type the agent reads: Ethernet, Linux cooked v1/v2, raw IP,
// BSD NULL/LOOP, raw IPv4 and raw IPv6. The link type decides where the network header and
// the protocol field are, exactly as in libpcap's code generator, and tcpdump 4.99/libpcap
// 1.10 is the reference: the tests compare, frame by frame, the frames this package accepts
// with those tcpdump accepts on the same captures.
//
// Design:
//   - A recursive-descent parser follows libpcap's grammar, quirks included ("and" and "or"
//     have equal precedence; "host a or b" repeats the qualifiers; "vlan" shifts the offsets
//     of everything after it; "^" takes the whole rest of an arithmetic expression), and
//     builds a boolean tree of tests while it parses, because "vlan" makes code generation
//     depend on parse order.
//   - The tree is emitted as short-circuit code with labels; conditional jumps farther than
//     255 instructions become jumps over two 32-bit unconditional jumps; programs are capped
//     at 4096 instructions (the kernel's limit).
//   - Matcher runs programs with a small pre-decoded interpreter (vm.go) rather than
//     x/net/bpf's VM: it takes the wire length ("less"/"greater" on truncated frames, as
//     tcpdump) and allocates nothing. x/net/bpf supplies the instruction types and assembler,
//     and its VM is the test oracle for the interpreter.
//   - github.com/packetcap/go-pcap/filter was evaluated and rejected: it hard-codes Ethernet
//     offsets (no SLL, raw IP or loopback link types) and 8-bit jump arithmetic, and lacks
//     the fragment, IPv6-fragment-header and VLAN semantics of tcpdump.
//
// Names are not resolved through the system: host names are refused, and service, protocol
// and ethertype names come from built-in IANA tables. See README.md for the grammar.
package bpf
