package metrics

// Selection picks what to render: one bucket (Window == 0; Bucket 0 is the live one) or a
// merged window of the newest Window buckets.
type Selection struct {
	Bucket int
	Window int
}

// RenderedPeriod is the "period" object of a rendered bucket or window.
type RenderedPeriod struct {
	StartTS int64 // seconds
	Length  int64 // seconds
	// Live is true when the rendered data is the live, still-written bucket of a live
	// (not recorded) stream: only then are "live" rate values shown.
	Live bool
}

// JSON returns the period as the reference prints it.
func (p RenderedPeriod) JSON() map[string]any {
	return map[string]any{"start_ts": p.StartTS, "length": p.Length}
}

// MergeRings merges the selection across rings (one per worker, all shifted in step) into dst,
// a fresh or reset bucket, and returns the period it covers.
func MergeRings[B any, PB Bucket[B]](rings []*Ring[B, PB], sel Selection, recorded bool, nowNs int64, dst PB) (RenderedPeriod, error) {
	var rp RenderedPeriod
	if len(rings) == 0 {
		return rp, &PeriodError{"no data"}
	}
	first := rings[0]
	if sel.Window == 0 {
		if err := CheckBucket(sel.Bucket, first.NumPeriods(), first.Len()); err != nil {
			return rp, err
		}
		for _, r := range rings {
			// Rings of other inputs (merge_like_handlers) may hold fewer buckets.
			if sel.Bucket < r.Len() {
				b, _ := r.Bucket(sel.Bucket)
				dst.Merge((*B)(b))
			}
		}
		_, p := first.Bucket(sel.Bucket)
		rp.StartTS = p.StartNs / 1e9
		rp.Length = p.LengthSeconds(nowNs, recorded)
		rp.Live = sel.Bucket == 0 && !p.ReadOnly && !recorded
		return rp, nil
	}
	if err := CheckWindow(sel.Window, first.NumPeriods()); err != nil {
		return rp, err
	}
	n := min(sel.Window, first.Len())
	for _, r := range rings {
		for i := range min(n, r.Len()) {
			b, _ := r.Bucket(i)
			dst.Merge((*B)(b))
		}
	}
	minStart := int64(0)
	var sum int64
	for i := range n {
		_, p := first.Bucket(i)
		if i == 0 || p.StartNs < minStart {
			minStart = p.StartNs
		}
		sum += p.LengthSeconds(nowNs, recorded)
	}
	rp.StartTS = minStart / 1e9
	if recorded {
		rp.Length = sum
	} else {
		rp.Length = nowNs/1e9 - rp.StartTS
	}
	_, p0 := first.Bucket(0)
	rp.Live = !p0.ReadOnly && !recorded
	return rp, nil
}
