package pcap

import (
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Binary form of a pcap bucket (layout in docs/sketch-format.md): 'P' 0x01 then the three
// counters as unsigned varints, in this order. Never reorder, only append in a new version.
const (
	BucketTag     = 'P'
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
		Counters: []*uint64{&b.reassemblyErrors, &b.osDrops, &b.ifDrops},
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
