package xen

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lsSample is `xenstore-ls -f` as tools/xs-clients/xenstore_client.c prints it (the real-lab
// capture, xenstore-ls-guest-agent.txt, is decoded by TestLabGuestReport).
const lsSample = `/local/domain/7/vm = "/vm/5f0c1a2e-0000-4000-8000-000000000007"
/local/domain/7/name = "xc-default-web-1-0123456789"
/local/domain/7/device = ""
/local/domain/7/device/vif = ""
/local/domain/7/device/vif/0 = ""
/local/domain/7/device/vif/0/mac = "00:16:3e:1a:b2:c3"
/local/domain/7/console/vnc-port = "5901"
/local/domain/7/attr = ""
/local/domain/7/attr/PVAddons = ""
/local/domain/7/attr/PVAddons/MajorVersion = "1"
/local/domain/7/attr/PVAddons/MinorVersion = "0"
/local/domain/7/attr/PVAddons/MicroVersion = "0"
/local/domain/7/attr/PVAddons/BuildVersion = "proto"
/local/domain/7/attr/vif = ""
/local/domain/7/attr/vif/0 = ""
/local/domain/7/attr/vif/0/ipv4 = ""
/local/domain/7/attr/vif/0/ipv4/1 = "10.0.0.9"
/local/domain/7/attr/vif/0/ipv4/0 = "192.0.2.10"
/local/domain/7/attr/vif/0/ipv6 = ""
/local/domain/7/attr/vif/0/ipv6/0 = "2001:db8::10"
/local/domain/7/attr/vif/1 = ""
/local/domain/7/attr/vif/1/ipv4/0 = "not an address"
/local/domain/7/attr/vif/1/ipv4/1 = "2001:db8::11"
/local/domain/7/attr/vif/9/ipv4/0 = "192.0.2.99"
/local/domain/7/data = ""
/local/domain/7/data/os_name = "Debian GNU/Linux 12 \x1b[31m(bookworm)"
/local/domain/7/data/os_uname = "6.1.0-56-amd64"
/local/domain/7/data/xenclone/token = "a\\nb "c""
/local/domain/7/control/shutdown = ""
/local/domain/7/memory/target:
`

func TestParseXenstoreLs(t *testing.T) {
	tree, err := ParseXenstoreLs([]byte(lsSample), "/local/domain/7")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"name":                "xc-default-web-1-0123456789",
		"attr/vif/0/ipv4/0":   "192.0.2.10",
		"data/xenclone/token": `a\nb "c"`,
		"data/os_name":        "Debian GNU/Linux 12 \x1b[31m(bookworm)",
		"control/shutdown":    "",
	} {
		if got, ok := tree[k]; !ok || got != want {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, want)
		}
	}
	if _, ok := tree["memory/target"]; ok {
		t.Error("a node without a readable value must be left out")
	}
	for name, bad := range map[string]string{
		"no value":       "/local/domain/7/x something\n",
		"cut":            `/local/domain/7/x = "abc\..."` + "\n",
		"no end quote":   `/local/domain/7/x = "abc` + "\n",
		"bad escape":     `/local/domain/7/x = "a\q"` + "\n",
		"short hex":      `/local/domain/7/x = "a\x4"` + "\n",
		"lone backslash": `/local/domain/7/x = "a\"` + "\n",
	} {
		if _, err := ParseXenstoreLs([]byte(bad), "/local/domain/7"); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	tree, err = ParseXenstoreLs([]byte(`/local/domain/7/x = "\001\x7f\t\\"`+"\n"), "/local/domain/7")
	if err != nil || tree["x"] != "\x01\x7f\t\\" {
		t.Errorf("escapes: %q %v", tree["x"], err)
	}
}

func TestGuestReportFrom(t *testing.T) {
	tree, err := ParseXenstoreLs([]byte(lsSample), "/local/domain/7")
	if err != nil {
		t.Fatal(err)
	}
	r := GuestReportFrom(tree)
	if !r.AgentReported() || r.AgentVersion != "1.0.0-proto" {
		t.Errorf("agent: %+v", r)
	}
	if r.OS != "Debian GNU/Linux 12 [31m(bookworm)" || r.Kernel != "6.1.0-56-amd64" {
		t.Errorf("os %q kernel %q: control bytes from the guest must be gone", r.OS, r.Kernel)
	}
	if r.VNCPort != 5901 {
		t.Errorf("vnc port %d", r.VNCPort)
	}
	nic := r.NICs[0]
	if len(nic.IPv4) != 2 || nic.IPv4[0].String() != "192.0.2.10" || nic.IPv4[1].String() != "10.0.0.9" || len(nic.IPv6) != 1 || nic.IPv6[0].String() != "2001:db8::10" {
		t.Errorf("nic 0 in the agent's order: %+v", nic)
	}
	if n1, ok := r.NICs[1]; ok {
		t.Errorf("nic 1 has only an unparsable value and an IPv6 address under ipv4: %+v", n1)
	}
	if _, ok := r.NICs[9]; ok {
		t.Error("a devid past the NIC bound must be left out")
	}

	// Bounds: a guest writing a thousand addresses gets MaxAddressesPerNIC.
	big := map[string]string{}
	for i := range 1000 {
		big["attr/vif/0/ipv4/"+strconv.Itoa(i)] = "10.1." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1)
	}
	big["data/os_name"] = strings.Repeat("x", 10000)
	r = GuestReportFrom(big)
	if len(r.NICs[0].IPv4) != MaxAddressesPerNIC || len(r.OS) != maxGuestStringLength {
		t.Errorf("bounds: %d addresses, OS of %d bytes", len(r.NICs[0].IPv4), len(r.OS))
	}
	if (GuestReport{}).AgentReported() {
		t.Error("an empty report is no agent")
	}
}

func FuzzParseXenstoreLs(f *testing.F) {
	f.Add([]byte(lsSample))
	if b, err := os.ReadFile(filepath.Join("testdata", "real-lab", "xenstore-ls-guest-agent.txt")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`/local/domain/7/x = "\001\x7f\t\\"` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tree, err := ParseXenstoreLs(b, "/local/domain/7")
		if err != nil {
			return
		}
		r := GuestReportFrom(tree)
		if len(r.NICs) > MaxGuestNICs || len(r.OS) > maxGuestStringLength || len(r.AgentVersion) > maxAgentVersionLen {
			t.Fatalf("unbounded report: %+v", r)
		}
		for _, n := range r.NICs {
			if len(n.IPv4) > MaxAddressesPerNIC || len(n.IPv6) > MaxAddressesPerNIC {
				t.Fatalf("unbounded NIC: %+v", n)
			}
			for _, a := range n.IPv4 {
				if !a.Is4() {
					t.Fatalf("IPv4 list holds %s", a)
				}
			}
		}
	})
}
