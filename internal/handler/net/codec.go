package net

import (
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Binary form of a net bucket (layout in docs/sketch-format.md): 'N' 0x01, the 13 counters
// as unsigned varints, then the 14 sketches, each as a varint length and its own encoding.
// The order below is the format: never reorder, only append in a new version.
const (
	BucketTag     = 'N'
	BucketVersion = 1
)

var _ handler.BucketCodec = (*Spec)(nil)

var layout = handler.Layout{Name: Schema, Tag: BucketTag, Version: BucketVersion}

// ringOf is the ring Render and AppendBucket merge.
func ringOf(h *Instance) *metrics.Ring[bucket, *bucket] { return h.ring }

// AppendBucket implements handler.BucketCodec: the same merge as Render.
func (s *Spec) AppendBucket(dst []byte, instances []handler.Handler, sel metrics.Selection, nowNs int64) ([]byte, metrics.RenderedPeriod, error) {
	return handler.AppendMerged(dst, layout, instances, ringOf, sel, s.common.Recorded, nowNs)
}

// MergeBucket implements handler.BucketCodec.
func (s *Spec) MergeBucket(inst handler.Handler, data []byte) error {
	return handler.MergeEncoded(layout, inst, data, ringOf)
}

// Fields lists the bucket's counters and sketches in format order.
func (b *bucket) Fields() handler.Fields {
	return handler.Fields{
		Counters: []*uint64{&b.events, &b.deepSamples, &b.udp, &b.tcp, &b.tcpSyn, &b.otherL4, &b.ipv4, &b.ipv6,
			&b.in, &b.out, &b.unknownDir, &b.total, &b.filtered},
		Sketches: []handler.Sketch{&b.ppsIn, &b.ppsOut, &b.ppsTotal, &b.ppsEvents, &b.bytesIn, &b.bytesOut, &b.bytesTotal,
			&b.srcIPsIn, &b.dstIPsOut, &b.topIPv4, &b.topIPv6, &b.topGeoLoc, &b.topASN, &b.payloadSize},
	}
}

// appendBinary appends the bucket's binary form to dst.
func (b *bucket) appendBinary(dst []byte) ([]byte, error) { return layout.Append(dst, b.Fields()) }

// unmarshalBinary replaces b with the decoded bucket; on error b is unchanged.
func (b *bucket) unmarshalBinary(data []byte) error {
	var tmp bucket
	if err := layout.Decode(data, tmp.Fields()); err != nil {
		return err
	}
	*b = tmp
	return nil
}
