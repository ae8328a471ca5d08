package lvm

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkParseFullReport decodes `lvm fullreport` JSON: the real 3-LV capture, and the same
// VG grown to 200 clone LVs (a busy host), since the agent reads the whole VG on every look.
func BenchmarkParseFullReport(b *testing.B) {
	real := readFixture(b, "real/fullreport-thick.json")
	for _, n := range []int{3, 200} {
		data := real
		if n > 3 {
			data = growReport(b, real, n)
		}
		b.Run(fmt.Sprintf("lvs=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				reps, err := ParseFullReport(data)
				if err != nil || len(reps) != 1 {
					b.Fatal(len(reps), err)
				}
			}
		})
	}
}

// growReport repeats the fixture's first LV line n-2 times with distinct names.
func growReport(b *testing.B, data []byte, n int) []byte {
	b.Helper()
	start := bytes.Index(data, []byte(`{"lv_name":"clone-a"`))
	end := bytes.Index(data[start:], []byte("},\n")) + start + 3
	if start < 0 || end <= start {
		b.Fatal("fixture layout changed: clone-a line not found")
	}
	line := data[start:end]
	var extra bytes.Buffer
	for i := 0; i < n-2; i++ {
		extra.Write(bytes.Replace(line, []byte(`"clone-a"`), fmt.Appendf(nil, `"clone-%04d"`, i), 1))
	}
	out := append([]byte{}, data[:start]...)
	out = append(out, extra.Bytes()...)
	return append(out, data[end:]...)
}
