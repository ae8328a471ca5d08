package controllers

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	valid := Options{HeartbeatGrace: 40 * time.Second, NodeLostRescheduleAfter: 5 * time.Minute, FenceMargin: 20 * time.Second,
		RescheduleMaxLostFraction: 0.55, MaxConcurrentReconciles: 16}
	if err := valid.Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		flag string // the flag the error must name; "" for valid
	}{
		{"grace zero", func(o *Options) { o.HeartbeatGrace = 0 }, "--heartbeat-grace"},
		{"delay negative", func(o *Options) { o.NodeLostRescheduleAfter = -time.Second }, "--node-lost-reschedule-after"},
		{"margin zero", func(o *Options) { o.FenceMargin = 0 }, "--fence-margin"},
		{"fraction over 1", func(o *Options) { o.RescheduleMaxLostFraction = 1.5 }, "--reschedule-max-lost-fraction"},
		{"no workers", func(o *Options) { o.MaxConcurrentReconciles = 0 }, "--max-concurrent-reconciles"},
		// 40 s + 30 s < 60 s + 20 s: a clone could start elsewhere before its host fenced.
		{"delay shorter than fence-after + margin", func(o *Options) { o.NodeLostRescheduleAfter = 30 * time.Second }, "--node-lost-reschedule-after"},
		{"a large margin", func(o *Options) { o.FenceMargin = 5 * time.Minute }, "--fence-margin"},
		// 20 s + 60 s = 60 s + 20 s: just enough.
		{"exactly fence-after + margin", func(o *Options) { o.HeartbeatGrace, o.NodeLostRescheduleAfter = 20*time.Second, 60*time.Second }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.mod(&o)
			err := o.Validate()
			switch {
			case tc.flag == "" && err != nil:
				t.Errorf("want valid, got %v", err)
			case tc.flag != "" && (err == nil || !strings.Contains(err.Error(), tc.flag)):
				t.Errorf("want an error naming %s, got %v", tc.flag, err)
			}
		})
	}
}
