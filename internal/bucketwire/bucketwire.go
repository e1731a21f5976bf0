// Package bucketwire holds the container of a policy's exported bucket (the sketch export of
// `GET /api/v1/policies/{name}/metrics/bucket/{n}?format=sketch`, read by the aggregator):
// a small JSON header describing the agent, the period and each handler, followed by each
// handler's bucket in its own binary form (internal/handler/*/codec.go). docs/sketch-format.md
// documents the layout.
//
//	"PVSK" | version (1 byte) | uvarint len | header JSON | per handler: uvarint len | bucket
//
// JSON for the header because it is small, self-describing and extensible (new keys are
// ignored by older readers); binary for the sketches because they are large and exact.
package bucketwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Magic starts every container; Version is the container layout written here.
const (
	Magic   = "PVSK"
	Version = 1

	// MediaType is the Content-Type of a container over HTTP.
	MediaType = "application/vnd.pktvisor.sketch"

	maxHeader   = 1 << 20
	maxHandlers = 256
)

// Header describes an exported bucket.
type Header struct {
	Instance     string    `json:"instance,omitempty"` // --prom-instance of the agent
	AgentVersion string    `json:"agent_version"`
	Policy       string    `json:"policy"`
	Bucket       int       `json:"bucket"` // the agent's bucket number when exported (0 = live)
	Period       Period    `json:"period"`
	Live         bool      `json:"live"` // the period was still in progress
	Drops        Drops     `json:"drops"`
	Handlers     []Handler `json:"handlers"`
}

// Period is the bucket's period, as in the JSON output.
type Period struct {
	StartTS int64 `json:"start_ts"`
	Length  int64 `json:"length"`
}

// Drops are the capture drops the agent counted in the period (the pcap handler's os_drops
// and if_drops summed over the policy's inputs); a view that includes drops is incomplete.
type Drops struct {
	OS uint64 `json:"os_drops"`
	If uint64 `json:"if_drops"`
}

// Handler is one handler of the policy: what builds the same handler elsewhere (type, version,
// config) and where it was (name, tap, module).
type Handler struct {
	Name    string         `json:"name"` // <policy>-<tap>-<module>
	Tap     string         `json:"tap"`
	Module  string         `json:"module"`
	Type    string         `json:"type"`
	Version string         `json:"version"`
	Schema  string         `json:"schema"`
	Config  map[string]any `json:"config"`
}

// Append appends the container of h and the handlers' buckets (one per h.Handlers, in order).
func Append(dst []byte, h *Header, buckets [][]byte) ([]byte, error) {
	if len(buckets) != len(h.Handlers) {
		return dst, fmt.Errorf("bucketwire: %d buckets for %d handlers", len(buckets), len(h.Handlers))
	}
	if len(h.Handlers) > maxHandlers {
		return dst, fmt.Errorf("bucketwire: %d handlers, at most %d", len(h.Handlers), maxHandlers)
	}
	js, err := json.Marshal(h)
	if err != nil {
		return dst, fmt.Errorf("bucketwire: header: %w", err)
	}
	if len(js) > maxHeader {
		return dst, fmt.Errorf("bucketwire: header of %d bytes, at most %d", len(js), maxHeader)
	}
	dst = append(dst, Magic...)
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(len(js)))
	dst = append(dst, js...)
	for _, b := range buckets {
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = append(dst, b...)
	}
	return dst, nil
}

// ErrFormat is wrapped by every decoding error.
var ErrFormat = errors.New("bucketwire: invalid container")

// Decode reads a container. The returned buckets alias data.
func Decode(data []byte) (*Header, [][]byte, error) {
	if len(data) < len(Magic)+1 || string(data[:len(Magic)]) != Magic {
		return nil, nil, fmt.Errorf("%w: not a pktvisor sketch export (magic)", ErrFormat)
	}
	if v := data[len(Magic)]; v != Version {
		return nil, nil, fmt.Errorf("%w: container version %d, this build reads %d", ErrFormat, v, Version)
	}
	rest := data[len(Magic)+1:]
	chunk := func(what string, limit int) ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			return nil, fmt.Errorf("%w: %s length", ErrFormat, what)
		}
		if n > uint64(len(rest)-k) || n > uint64(limit) {
			return nil, fmt.Errorf("%w: %s of %d bytes, %d left", ErrFormat, what, n, len(rest)-k)
		}
		b := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return b, nil
	}
	js, err := chunk("header", maxHeader)
	if err != nil {
		return nil, nil, err
	}
	var h Header
	if err := json.Unmarshal(js, &h); err != nil {
		return nil, nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
	}
	if len(h.Handlers) > maxHandlers {
		return nil, nil, fmt.Errorf("%w: %d handlers, at most %d", ErrFormat, len(h.Handlers), maxHandlers)
	}
	buckets := make([][]byte, len(h.Handlers))
	for i := range buckets {
		if buckets[i], err = chunk("bucket "+h.Handlers[i].Name, len(rest)); err != nil {
			return nil, nil, err
		}
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the last bucket", ErrFormat, len(rest))
	}
	return &h, buckets, nil
}
