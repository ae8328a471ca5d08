package hostagent_test

import (
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/xen"
)

func TestGuestDataEntries(t *testing.T) {
	many := map[string][]byte{}
	for i := range 17 {
		many[string(rune('a'+i))] = []byte("v")
	}
	for _, tc := range []struct {
		name    string
		data    map[string][]byte
		want    []string // paths then values, in order
		wantErr string
	}{
		{"sorted, ready last with the version", map[string][]byte{"token": []byte("t"), "ssh-key": []byte("k")},
			[]string{"data/xenclone/ssh-key=k", "data/xenclone/token=t", "data/xenclone/ready=42"}, ""},
		{"empty Secret still says ready", map[string][]byte{}, []string{"data/xenclone/ready=42"}, ""},
		{"16 keys at most", many, nil, "17 keys, more than 16"},
		{"a dotted key", map[string][]byte{"a.b": nil}, nil, `key "a.b" is not a plain name`},
		{"a path", map[string][]byte{"a/b": nil}, nil, `e.g. "a_b"`},
		{"ready is reserved", map[string][]byte{"ready": nil}, nil, `"ready" is reserved`},
		{"a value too large", map[string][]byte{"big": []byte(strings.Repeat("x", xen.MaxXenstoreValue+1))}, nil, "more than xenstore's 2048"},
		{"a value at the limit", map[string][]byte{"big": []byte(strings.Repeat("x", xen.MaxXenstoreValue))}, []string{"data/xenclone/big=" + strings.Repeat("x", 2048), "data/xenclone/ready=42"}, ""},
		{"a NUL byte", map[string][]byte{"bin": []byte("a\x00b")}, nil, "base64-encode it"},
	} {
		got, err := hostagent.GuestDataEntries(tc.data, "42")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var flat []string
		for _, e := range got {
			flat = append(flat, e.Path+"="+e.Value)
		}
		if strings.Join(flat, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: got %q, want %q", tc.name, flat, tc.want)
		}
	}
}
