package dns

import (
	"github.com/pktvisor-go/pktvisor/internal/handler"
	"github.com/pktvisor-go/pktvisor/internal/metrics"
)

// Binary form of a dns bucket (layout in docs/sketch-format.md): 'D' 0x01, the 25 counters
// as unsigned varints, then the 24 sketches, each as a varint length and its own encoding.
// The order below is the format: never reorder, only append in a new version.
const (
	BucketTag     = 'D'
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

// MergeBucket implements handler.BucketCodec. Only the bucket is merged: the instance's open
// transactions and slow thresholds are its own (an aggregator's instance has none, so its
// Shift sweeps an empty table and AfterShift derives thresholds nobody uses).
func (s *Spec) MergeBucket(inst handler.Handler, data []byte) error {
	return handler.MergeEncoded(layout, inst, data, ringOf)
}

// Fields lists the bucket's counters and sketches in format order.
func (b *bucket) Fields() handler.Fields {
	return handler.Fields{
		Counters: []*uint64{&b.events, &b.deepSamples, &b.queries, &b.replies, &b.tcp, &b.udp, &b.ipv4, &b.ipv6,
			&b.dot, &b.doh, &b.dnscryptUDP, &b.dnscryptTCP, &b.doq,
			&b.noerror, &b.nxdomain, &b.srvfail, &b.refused, &b.nodata, &b.total, &b.filtered, &b.queryECS,
			&b.xactTotal, &b.xactTimedOut, &b.xin.total, &b.xout.total},
		Sketches: []handler.Sketch{&b.ratesTotal, &b.ratesEvents, &b.qnameCard, &b.xactRatio,
			&b.xin.us, &b.xin.hist, &b.xin.slow, &b.xout.us, &b.xout.hist, &b.xout.slow,
			&b.topQname2, &b.topQname3, &b.topNX, &b.topSrvfail, &b.topRefused, &b.topNodata, &b.topNoerror,
			&b.topRespBytes, &b.topQueryECS, &b.topGeoLocECS, &b.topASNECS,
			&b.topPorts, &b.topRcode, &b.topQtype},
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
