package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram in microseconds, safe for
// concurrent Record: values below 64 µs are exact, larger ones fall in one
// of 32 buckets per power of two (about 3% wide). Like HDR histograms,
// memory is fixed and recording is one atomic add.
type hist struct {
	counts [64 + 58*32]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Uint64
}

func bucketOf(us uint64) int {
	if us < 64 {
		return int(us)
	}
	shift := bits.Len64(us) - 6 // ≥ 1
	top := us >> shift          // in [32, 63]
	return 64 + (shift-1)*32 + int(top-32)
}

// lowerBound is the smallest value of bucket i; upper is the next bucket's.
func lowerBound(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	shift := (i-64)/32 + 1
	top := uint64((i-64)%32 + 32)
	return top << shift
}

// Record adds one latency; negative ones (clock steps) count as zero.
func (h *hist) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	i := bucketOf(us)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *hist) Count() uint64 { return h.n.Load() }

// Quantile returns the value at quantile q (0..1): the middle of the bucket
// holding it, capped by the maximum seen.
func (h *hist) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			v := min((lo+hi)/2, h.max.Load())
			if i < 64 {
				v = lo
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// Max is the largest recorded value.
func (h *hist) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }
