package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pktvisor-go/pktvisor/internal/config"
	"github.com/pktvisor-go/pktvisor/internal/dnstap"
	"github.com/pktvisor-go/pktvisor/internal/hostspec"
	"github.com/pktvisor-go/pktvisor/internal/stream"
)

// dnstapConfigKeys are the dnstap input's keys (spec §4.3).
var dnstapConfigKeys = []string{"dnstap_file", "socket", "tcp", "only_hosts"}

// dnstapFilterKeys are the keys of a dnstap policy's input.filter.
var dnstapFilterKeys = []string{"only_hosts"}

// dnstapPoll is how long a live dnstap source waits for a batch before it lets the stream
// tick its clock and serve control requests.
const dnstapPoll = 100 * time.Millisecond

// newDnstapInput validates a dnstap input configuration and opens its file or binds its
// socket; it does not start reading.
func (a *Agent) newDnstapInput(in *input, cfg, filter config.Map) (*input, error) {
	if err := cfg.CheckKeys(dnstapConfigKeys); err != nil {
		return nil, err
	}
	if err := filter.CheckKeys(dnstapFilterKeys); err != nil {
		return nil, err
	}
	// only_hosts in the tap/input config is validated but, as in the reference (spec §6.1
	// "stream-level only_hosts"), filters nothing: only the policy's input.filter does.
	if _, err := onlyHosts(cfg); err != nil {
		return nil, err
	}
	only, err := onlyHosts(filter)
	if err != nil {
		return nil, err
	}
	str := func(key string) (string, error) {
		v, _, err := cfg.String(key)
		return v, err
	}
	file, err := str("dnstap_file")
	if err != nil {
		return nil, err
	}
	sock, err := str("socket")
	if err != nil {
		return nil, err
	}
	tcp, err := str("tcp")
	if err != nil {
		return nil, err
	}
	scfg := stream.Config{Workers: a.opts.Workers, City: a.city, ASN: a.asn, GeoCacheSize: a.opts.GeoCacheSize}
	ds := &dnstapSource{only: only}
	switch {
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("dnstap: %w", err)
		}
		ds.frames = dnstap.NewReader(f, nil, dnstap.ReaderOptions{})
		in.source, in.closer = "dnstap_file", f
	case sock != "" || tcp != "":
		sc := dnstap.ServerConfig{Network: "unix", Address: sock}
		if sock == "" {
			host, port, err := net.SplitHostPort(tcp)
			if n, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil || host == "" || n == 0 {
				return nil, errors.New("invalid tcp address specification, use HOST:PORT")
			}
			sc = dnstap.ServerConfig{Network: "tcp", Address: tcp}
		}
		srv, err := dnstap.Listen(context.Background(), sc)
		if err != nil {
			return nil, err
		}
		ds.server, ds.timer = srv, time.NewTimer(time.Hour)
		ds.timer.Stop()
		scfg.Live = true
		in.source, in.closer = "dnstap_"+sc.Network, srv
	default:
		return nil, errors.New("config must specify one of: socket, dnstap_file")
	}
	in.dnstap = ds
	in.st = stream.NewGroups(scfg, nil)
	return in, nil
}

// onlyHosts parses a map's only_hosts CIDR list (nil when absent).
func onlyHosts(m config.Map) (*hostspec.Set, error) {
	hosts, ok, err := m.List("only_hosts")
	if err != nil || !ok {
		return nil, err
	}
	return hostspec.ParseList(hosts)
}

// dnstapSource is the stream's view of a dnstap input: the frames of a file, or of the
// batches a socket server delivers (ErrIdle when none came for dnstapPoll), optionally
// restricted to messages whose query or response address is in only_hosts.
type dnstapSource struct {
	frames *dnstap.Reader // file, or
	server *dnstap.Server // socket / tcp
	timer  *time.Timer
	batch  *dnstap.Batch
	next   int

	only     *hostspec.Set
	tap      dnstap.Dnstap // only_hosts decoding (the stream decodes again: filtering is rare)
	filtered atomic.Uint64
}

// Next returns the next frame (valid until the next call).
func (s *dnstapSource) Next() ([]byte, error) {
	for {
		frame, err := s.nextFrame()
		if err != nil || s.only == nil || s.pass(frame) {
			return frame, err
		}
		s.filtered.Add(1)
	}
}

// pass reports whether a frame's query or response address is in only_hosts; frames that are
// not messages go on, for the stream to count as skipped.
func (s *dnstapSource) pass(frame []byte) bool {
	if s.tap.Unmarshal(frame) != nil || !s.tap.IsMessage() {
		return true
	}
	m := &s.tap.Message
	return s.only.Contains(m.QueryAddress) || s.only.Contains(m.ResponseAddress)
}

func (s *dnstapSource) nextFrame() ([]byte, error) {
	if s.frames != nil {
		return s.frames.Next()
	}
	for {
		if s.batch != nil {
			if s.next < len(s.batch.Frames) {
				s.next++
				return s.batch.Frames[s.next-1], nil
			}
			s.server.Release(s.batch)
			s.batch = nil
		}
		select {
		case b, ok := <-s.server.Batches():
			if !ok {
				return nil, io.EOF
			}
			s.batch, s.next = b, 0
			continue
		default:
		}
		s.timer.Reset(dnstapPoll)
		select {
		case b, ok := <-s.server.Batches():
			s.timer.Stop()
			if !ok {
				return nil, io.EOF
			}
			s.batch, s.next = b, 0
		case <-s.timer.C:
			return nil, stream.ErrIdle
		}
	}
}

// stats is the "stats" object of a dnstap input's info: what the stream read and skipped,
// what only_hosts filtered, and, for a socket, the server's counters.
func (s *dnstapSource) stats(st stream.Stats) map[string]any {
	out := map[string]any{"frames": st.Frames, "skipped": st.DnstapSkipped, "dns_malformed": st.DNSMalformed,
		"filtered": s.filtered.Load()}
	if s.server != nil {
		ss := s.server.Stats()
		out["connections"], out["active_connections"], out["rejected"] = ss.Connections, ss.ActiveConnections, ss.Rejected
		out["connection_errors"], out["dropped"] = ss.ConnErrors, ss.Dropped
		if err := s.server.LastError(); err != nil {
			out["last_error"] = err.Error()
		}
	}
	return out
}

// drops are a dnstap server's counters for the health metrics: frames dropped for want of a
// free batch, and connections closed on an error.
func (s *dnstapSource) drops() (dropped, connErrors uint64) {
	if s.server == nil {
		return 0, 0
	}
	ss := s.server.Stats()
	return ss.Dropped, ss.ConnErrors
}
