package xlcfg

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	src := `# comment
name = "c1"; memory = 512
vif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0',
        "mac=00:16:3e:00:00:02" , ]
cmdline = "a \"quoted\" \\ back"
extra += "x"
disk=[]
`
	f, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Keys(), ","); got != "name,memory,vif,cmdline,extra,disk" {
		t.Errorf("keys %s", got)
	}
	if v, _ := f.Get("memory"); !v.Number || v.Str != "512" {
		t.Errorf("memory %+v", v)
	}
	if l, ok := f.StringList("vif"); !ok || len(l) != 2 || l[1] != "mac=00:16:3e:00:00:02" {
		t.Errorf("vif %q", l)
	}
	if s, _ := f.String("cmdline"); s != `a "quoted" \ back` {
		t.Errorf("cmdline %q", s)
	}
	if v, _ := f.Get("disk"); !v.IsList || len(v.List) != 0 {
		t.Errorf("disk %+v", v)
	}
}

func TestParseErrors(t *testing.T) {
	for _, src := range []string{
		`name = "unterminated`,
		"name = \"new\nline\"",
		`name = c1`,       // bare word is not a value
		`Name = "x"`,      // keys are lowercase
		`name "x"`,        // no '='
		`a = [ "x" "y" ]`, // missing comma
		`a = "x" b = "y"`, // two statements on one line
		`a = "\q"`,        // unknown escape
		`a = (1)`,         // python-ism
	} {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%q: want error", src)
		} else if !strings.Contains(err.Error(), "config parsing error") {
			t.Errorf("%q: error %q not worded like libxlu", src, err)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		``:           `""`,
		`a b`:        `"a b"`,
		`say "hi"`:   `"say \"hi\""`,
		`c:\x`:       `"c:\\x"`,
		`a];b="c",#`: `"a];b=\"c\",#"`,
	} {
		got, err := Quote(in)
		if err != nil || got != want {
			t.Errorf("Quote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f"} {
		if _, err := Quote(bad); !errors.Is(err, ErrUnquotable) {
			t.Errorf("Quote(%q): want ErrUnquotable, got %v", bad, err)
		}
	}
}

func TestParseDisk(t *testing.T) {
	for spec, want := range map[string]Disk{
		"format=raw,vdev=xvda,access=rw,target=/dev/vg0/c1": {Target: "/dev/vg0/c1", Format: "raw", Vdev: "xvda", Access: "rw"},
		"format=raw,vdev=xvdb,access=ro,target=/a,b=c":      {Target: "/a,b=c", Format: "raw", Vdev: "xvdb", Access: "ro"},
		"/dev/vg0/c1,raw,xvda,rw":                           {Target: "/dev/vg0/c1", Format: "raw", Vdev: "xvda", Access: "rw"},
		"phy:/dev/vg0/snap1,xvda,w":                         {Target: "/dev/vg0/snap1", Format: "raw", Vdev: "xvda", Access: "rw"},
		"/var/lib/seed.img,raw,xvdb,ro":                     {Target: "/var/lib/seed.img", Format: "raw", Vdev: "xvdb", Access: "ro"},
	} {
		got, err := ParseDisk(spec)
		if err != nil || got != want {
			t.Errorf("ParseDisk(%q) = %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"vdev=xvda,evil=1,target=/x", "/x,raw", "format=zip,vdev=xvda,target=/x"} {
		if _, err := ParseDisk(bad); err == nil {
			t.Errorf("ParseDisk(%q): want error", bad)
		}
	}
}

func TestParseVif(t *testing.T) {
	v, err := ParseVif("mac=00:16:3e:00:00:01, bridge=xenbr1")
	if err != nil || v["mac"] != "00:16:3e:00:00:01" || v["bridge"] != "xenbr1" || len(v) != 2 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := ParseVif("mac=1,evil"); err == nil {
		t.Error("want error for a bare word")
	}
}

// FuzzParse: the parser never panics, and whatever it accepts has lowercase keys.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"name = \"x\"\n", "a=[1,'b',[\"c\"]];b+=2", "# c\n\n", "a = \"\\\"\"", "a = [\n]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		for _, s := range cfg.Settings {
			if s.Key == "" || s.Key[0] < 'a' || s.Key[0] > 'z' {
				t.Fatalf("bad key %q", s.Key)
			}
		}
	})
}

// FuzzQuoteRoundTrip: any string Quote accepts comes back unchanged as the single value of a
// single key, whatever it contains — the property that stops injection.
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"", "x", `a"b`, `a\`, `"];evil="1`, "#", "'", "a,b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Quote(s)
		if err != nil {
			return
		}
		cfg, err := Parse([]byte("key = " + q + "\nlast = 1\n"))
		if err != nil {
			t.Fatalf("Quote(%q) = %s does not parse: %v", s, q, err)
		}
		if len(cfg.Settings) != 2 || cfg.Settings[0].Key != "key" || cfg.Settings[1].Key != "last" {
			t.Fatalf("Quote(%q) = %s changed the keys: %+v", s, q, cfg.Settings)
		}
		if got, _ := cfg.String("key"); got != s {
			t.Fatalf("round trip %q -> %s -> %q", s, q, got)
		}
	})
}

func FuzzParseDisk(f *testing.F) {
	for _, s := range []string{"format=raw,vdev=xvda,access=rw,target=/dev/vg0/c1", "phy:/dev/x,xvda,w", "/x,raw,xvdb,ro", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		d, err := ParseDisk(spec)
		if err != nil {
			return
		}
		if d.Vdev == "" || (d.Access != "rw" && d.Access != "ro") {
			t.Fatalf("%q parsed to %+v", spec, d)
		}
	})
}

func FuzzParseVif(f *testing.F) {
	for _, s := range []string{"mac=00:16:3e:00:00:01,bridge=xenbr0", "bridge=a", "", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		v, err := ParseVif(spec)
		if err != nil {
			return
		}
		for k := range v {
			if !vifKeys[k] {
				t.Fatalf("%q: unknown key %q accepted", spec, k)
			}
		}
	})
}
