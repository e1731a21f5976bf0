package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/bpf"
	"github.com/pktvisor-go/pktvisor/internal/capture"
	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// pcapConfigKeys are the pcap input's keys, in the reference's declaration order (its error
// message lists them so), then ours.
var pcapConfigKeys = []string{"iface", "bpf", "host_spec", "pcap_source", "pcap_file", "debug",
	"tcp_packet_reassembly_cache_limit", "realtime"}

// pcapFilterKeys are the keys of a pcap policy's input.filter.
var pcapFilterKeys = []string{"bpf"}

// input is one running input stream: a capture source feeding a stream, shared by every
// policy that selects the same tap with the same input config and filter.
type input struct {
	name   string // <tap>-<hash>
	tap    string
	typ    string
	config config.Map // tap config ∪ policy input config (∪ filter)
	filter config.Map

	source    string // "af_packet", "pcap_file", "dnstap_file", "dnstap_unix" or "dnstap_tcp"
	iface     string
	hostIPs   []netip.Prefix
	src       stream.Source   // one source read by the stream's dispatcher, or
	lanes     []stream.Source // one live socket per worker (fanout), or
	dnstap    *dnstapSource   // a dnstap file or server
	closer    io.Closer
	st        *stream.Stream
	cancel    context.CancelFunc
	done      chan struct{}
	resources *policyState // the automatic <input>-resources policy, if any

	mu      sync.Mutex // guards the fields below
	running bool
	err     error
	users   int // policies attached (resources policy excluded)
	started time.Time
}

// inputName is the reference's `<tap>-<hex hash>` of the effective configuration. The hash
// is FNV-64a of the canonical JSON of the config (keys sorted), so it is stable across runs
// and platforms (the reference's std::hash was not).
func inputName(tap string, cfg, filter config.Map) string {
	h := fnv.New64a()
	b, _ := json.Marshal(map[string]any{"config": cfg, "filter": filter}) // maps marshal sorted
	h.Write(b)
	return fmt.Sprintf("%s-%016x", tap, h.Sum64())
}

// newInput validates the input configuration and opens its source; it does not start
// reading.
func (a *Agent) newInput(tapName, typ string, cfg, filter config.Map) (*input, error) {
	if typ != "pcap" && typ != "dnstap" {
		return nil, fmt.Errorf("input type '%s' is not supported (supported: pcap, dnstap)", typ)
	}
	in := &input{name: inputName(tapName, cfg, filter), tap: tapName, typ: typ, config: cfg, filter: filter,
		done: make(chan struct{})}
	if typ == "dnstap" {
		return a.newDnstapInput(in, cfg, filter)
	}
	if err := cfg.CheckKeys(pcapConfigKeys); err != nil {
		return nil, err
	}
	if err := filter.CheckKeys(pcapFilterKeys); err != nil {
		return nil, err
	}
	str := func(key string) (string, error) {
		v, _, err := cfg.String(key)
		return v, err
	}
	bpfExpr, err := str("bpf")
	if err != nil {
		return nil, err
	}
	if v, ok, err := filter.String("bpf"); err != nil {
		return nil, err
	} else if ok {
		bpfExpr = v
	}
	hs, err := str("host_spec")
	if err != nil {
		return nil, err
	}
	hosts, err := hostspec.Parse(hs)
	if err != nil {
		return nil, err
	}
	scfg := stream.Config{Workers: a.opts.Workers, HostSpec: hosts, City: a.city, ASN: a.asn, GeoCacheSize: a.opts.GeoCacheSize}
	if v, ok, err := cfg.Uint("tcp_packet_reassembly_cache_limit"); err != nil {
		return nil, err
	} else if ok {
		scfg.TCP.MaxFlows = int(min(v, 1<<24))
	}
	file, err := str("pcap_file")
	if err != nil {
		return nil, err
	}
	pcapSource, err := str("pcap_source")
	if err != nil {
		return nil, err
	}
	if file != "" {
		realtime, _, err := cfg.Bool("realtime")
		if err != nil {
			return nil, err
		}
		f, err := capture.OpenFile(file)
		if err != nil {
			return nil, err
		}
		if bpfExpr != "" {
			if _, err := bpf.NewMatcher(bpfExpr, uint32(f.LinkType())); err != nil {
				f.Close()
				return nil, err
			}
			scfg.BPF = bpfExpr
		}
		in.source, in.closer, in.src = "pcap_file", f, f
		if realtime {
			scfg.Live = true
			in.src = &pacedSource{src: f}
		}
	} else {
		switch pcapSource {
		case "", "libpcap", "af_packet":
		case "mock":
			return nil, errors.New("pcap_source 'mock' is not supported (use pcap_file with realtime: true for a demo)")
		default:
			return nil, errors.New("unknown pcap source")
		}
		ifspec, err := str("iface")
		if err != nil {
			return nil, err
		}
		if ifspec == "" {
			return nil, errors.New("no iface was specified for live capture")
		}
		name, err := capture.ResolveIface(ifspec)
		if err != nil {
			return nil, err
		}
		lc := capture.LiveConfig{Iface: name}
		if bpfExpr != "" {
			lt, err := capture.IfaceLinkType(name)
			if err != nil {
				return nil, err
			}
			snap := capture.DefaultLiveSnapLen
			if lc.BPF, err = bpf.Compile(bpfExpr, uint32(lt), snap); err != nil {
				return nil, err
			}
		}
		prefixes, err := capture.InterfacePrefixes(name)
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			hosts.Add(p)
		}
		in.hostIPs = prefixes
		scfg.Live = true
		in.source, in.iface = "af_packet", name
		if scfg.Workers > 1 {
			// One socket per worker in a PACKET_FANOUT_HASH group, each read by its worker.
			socks, err := capture.OpenLiveFanout(lc, scfg.Workers)
			if err != nil {
				return nil, err
			}
			in.closer = closeAll(socks)
			for _, ls := range socks {
				in.lanes = append(in.lanes, ls)
			}
		} else {
			ls, err := capture.OpenLive(lc)
			if err != nil {
				return nil, err
			}
			in.closer, in.src = ls, ls
		}
	}
	in.st = stream.NewGroups(scfg, nil)
	return in, nil
}

// start runs the input's stream until stop.
func (in *input) start(log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.mu.Lock()
	in.running, in.started = true, time.Now()
	in.mu.Unlock()
	go func() {
		defer close(in.done)
		var err error
		switch {
		case in.dnstap != nil:
			err = in.st.RunDnstap(ctx, in.dnstap)
		case in.lanes != nil:
			err = in.st.RunFanout(ctx, in.lanes)
		default:
			err = in.st.Run(ctx, in.src)
		}
		in.mu.Lock()
		in.running = false
		if err != nil && !errors.Is(err, context.Canceled) {
			in.err = err
		}
		in.mu.Unlock()
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			log.Warn("input stopped", "input", in.name, "err", err)
		case (in.source == "pcap_file" || in.source == "dnstap_file") && ctx.Err() == nil:
			st := in.st.Stats()
			log.Info("capture file read", "input", in.name, "packets", st.Frames)
		}
	}()
}

// stop ends the stream and releases the source. Safe to call on an input never started.
func (in *input) stop() {
	if in.cancel != nil {
		in.cancel()
		if in.source == "af_packet" {
			in.closer.Close() // wakes a Next blocked in poll
		}
		<-in.done
	}
	if in.source != "af_packet" || in.cancel == nil {
		in.closer.Close()
	}
}

// info is the reference's input info object.
func (in *input) info() map[string]any {
	in.mu.Lock()
	running, users := in.running, in.users
	errMsg := ""
	if in.err != nil {
		errMsg = in.err.Error()
	}
	in.mu.Unlock()
	v4, v6 := []string{}, []string{}
	for _, p := range in.hostIPs {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	st := in.st.Stats()
	inp := map[string]any{"running": running, "consumers": users}
	if errMsg != "" {
		inp["error"] = errMsg
	}
	if in.dnstap != nil {
		// The reference's dnstap info is module + input only; "stats" is ours.
		return map[string]any{
			"module": map[string]any{"name": in.name, "config": in.config.Merge(in.filter)},
			"input":  inp,
			"stats":  in.dnstap.stats(st),
		}
	}
	return map[string]any{
		"module": map[string]any{"name": in.name, "config": in.config.Merge(in.filter)},
		"input":  inp,
		"pcap": map[string]any{
			"available_iface": capture.AvailableInterfaces(),
			"host_ips":        map[string]any{"ipv4": v4, "ipv6": v6},
			"pcap_source":     in.source,
		},
		// Ours: what the stream read and could not use, since the input started.
		"stats": map[string]any{
			"frames": st.Frames, "bpf_filtered": st.BPFFiltered, "malformed": st.Malformed,
			"unknown_link": st.UnknownLink, "dns_malformed": st.DNSMalformed,
		},
	}
}

// pacedSource replays a capture file at the pace of its own timestamps, restamped to the
// wall clock, so that a recorded capture behaves as live traffic (a demo, a test).
type pacedSource struct {
	src   *capture.FileReader
	start time.Time
	first int64
	held  bool
	data  []byte
	info  capture.PacketInfo
}

// maxPaceWait bounds one wait, so the stream runs its timers while the file is quiet.
const maxPaceWait = 100 * time.Millisecond

func (p *pacedSource) Next() ([]byte, capture.PacketInfo, error) {
	if !p.held {
		data, info, err := p.src.Next()
		if err != nil {
			return nil, info, err
		}
		if p.start.IsZero() {
			p.start, p.first = time.Now(), info.TS
		}
		p.data, p.info, p.held = data, info, true
	}
	due := p.start.Add(time.Duration(max(p.info.TS-p.first, 0)))
	if wait := time.Until(due); wait > 0 {
		time.Sleep(min(wait, maxPaceWait))
		if wait > maxPaceWait {
			return nil, capture.PacketInfo{}, stream.ErrIdle
		}
	}
	p.held = false
	info := p.info
	info.TS = due.UnixNano()
	return p.data, info, nil
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closeAll closes every socket of a fanout group.
type closeAll []*capture.LiveSource

func (c closeAll) Close() error {
	var errs []error
	for _, s := range c {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// dropStats sums the capture drops of an input's sockets. The interface drop counter is the
// interface's, the same on every socket: it is taken once.
func (in *input) dropStats() (osd, ifd uint64) {
	srcs := in.lanes
	if srcs == nil {
		srcs = []stream.Source{in.src}
	}
	for i, src := range srcs {
		if ds, ok := src.(stream.DropSource); ok {
			o, f, err := ds.Stats()
			if err != nil {
				continue
			}
			osd += o
			if i == 0 {
				ifd = f
			}
		}
	}
	return osd, ifd
}
