package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

const crdDir = "../../config/crd/bases"

// parsed is a rendered reference read back: each heading's table rows by field name.
type parsed struct {
	sections map[string]map[string][]string // heading -> field -> cells
	text     map[string]string              // heading -> everything under it
	anchors  map[string]bool
}

func parse(t *testing.T, doc []byte) parsed {
	t.Helper()
	p := parsed{sections: map[string]map[string][]string{}, text: map[string]string{}, anchors: map[string]bool{}}
	cur := ""
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			cur = h
		} else if h, ok := strings.CutPrefix(line, "### "); ok {
			cur = h
		}
		if strings.HasPrefix(line, "#") {
			a := githubSlug(strings.TrimLeft(line, "# "))
			if p.anchors[a] {
				t.Errorf("two headings have the anchor #%s", a)
			}
			p.anchors[a] = true
			continue
		}
		p.text[cur] += line + "\n"
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := splitRow(line)
		if p.sections[cur] == nil {
			p.sections[cur] = map[string][]string{}
		}
		name := strings.Trim(cells[0], "`")
		if _, dup := p.sections[cur][name]; dup {
			t.Errorf("%s: field %s listed twice", cur, name)
		}
		p.sections[cur][name] = cells
	}
	return p
}

// splitRow splits a table row on the | that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] == '|' && (i == 0 || line[i-1] != '\\') {
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
			continue
		}
		cur.WriteByte(line[i])
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

func renderDir(t *testing.T, dir string) []byte {
	t.Helper()
	crds, err := loadCRDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := render(crds, "config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestEveryPropertyRendered walks each CRD's schema on its own and checks that every property
// of every kind has its row, in the section of its parent, with the right required, default,
// enum and CEL messages, and that every link inside the document leads to a heading.
func TestEveryPropertyRendered(t *testing.T) {
	crds, err := loadCRDs(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) < 4 {
		t.Fatalf("want the 4 xenclone CRDs in %s, got %d", crdDir, len(crds))
	}
	doc, err := render(crds, "config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, doc)
	total := 0
	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			total += checkObject(t, p, crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema)
			for _, c := range v.AdditionalPrinterColumns {
				if !strings.Contains(p.text[crd.Spec.Names.Kind], "`"+strings.ReplaceAll(c.JSONPath, "|", `\|`)+"`") {
					t.Errorf("%s: printer column %s (%s) not listed", crd.Spec.Names.Kind, c.Name, c.JSONPath)
				}
			}
		}
	}
	t.Logf("%d properties checked", total)
	if total < 150 {
		t.Errorf("only %d properties found: is the schema walk broken?", total)
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(doc), -1) {
		if !p.anchors[m[1]] {
			t.Errorf("link to #%s leads nowhere", m[1])
		}
	}
}

func checkObject(t *testing.T, p parsed, title string, s *apiextv1.JSONSchemaProps) int {
	t.Helper()
	rows, ok := p.sections[title]
	if !ok && len(s.Properties) > 0 {
		t.Errorf("no section %q", title)
		return 0
	}
	for _, v := range s.XValidations {
		if !strings.Contains(p.text[title], v.Message) {
			t.Errorf("%s: rule message %q missing", title, v.Message)
		}
	}
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	n := 0
	for name, prop := range s.Properties {
		n++
		cells, ok := rows[name]
		if !ok {
			t.Errorf("%s: no row for %s", title, name)
			continue
		}
		if len(cells) != 6 {
			t.Errorf("%s.%s: %d cells, want 6: %q", title, name, len(cells), cells)
			continue
		}
		if got, want := cells[2] == "**required**", required[name]; got != want {
			t.Errorf("%s.%s: required shown as %q, schema says %v", title, name, cells[2], want)
		}
		if (prop.Default != nil) != (cells[3] != "") {
			t.Errorf("%s.%s: default cell %q, schema default %v", title, name, cells[3], prop.Default)
		}
		for _, e := range prop.Enum {
			if !strings.Contains(cells[4], strings.Trim(string(e.Raw), `"`)) {
				t.Errorf("%s.%s: enum value %s missing from %q", title, name, e.Raw, cells[4])
			}
		}
		if prop.MaxLength != nil && !strings.Contains(cells[4], "length ≤ ") {
			t.Errorf("%s.%s: maxLength missing from %q", title, name, cells[4])
		}
		if len(prop.Properties) == 0 {
			for _, v := range prop.XValidations {
				if !strings.Contains(cells[4], v.Message) {
					t.Errorf("%s.%s: rule message %q missing from %q", title, name, v.Message, cells[4])
				}
			}
		}
		if d := strings.Join(strings.Fields(prop.Description), " "); d != "" {
			words := strings.Fields(d)
			if !strings.Contains(cells[5], words[0]) {
				t.Errorf("%s.%s: description %q not in %q", title, name, d, cells[5])
			}
		}
		switch {
		case len(prop.Properties) > 0:
			n += checkObject(t, p, title+"."+name, &prop)
		case prop.Items != nil && prop.Items.Schema != nil && len(prop.Items.Schema.Properties) > 0:
			n += checkObject(t, p, title+"."+name+"[]", prop.Items.Schema)
		}
	}
	return n
}

func TestDeterministic(t *testing.T) {
	crds, err := loadCRDs(crdDir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := render(crds, "x")
	if err != nil {
		t.Fatal(err)
	}
	rev := make([]apiextv1.CustomResourceDefinition, len(crds))
	for i := range crds {
		rev[len(crds)-1-i] = crds[i]
	}
	for i := 0; i < 5; i++ { // map iteration order differs from run to run
		b, err := render(rev, "x")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("two renders of the same CRDs differ")
		}
	}
}

// TestCommittedReferenceIsCurrent fails when docs/api-reference.md was not regenerated after
// an API change (make verify checks the same through git diff).
func TestCommittedReferenceIsCurrent(t *testing.T) {
	want := renderDir(t, crdDir)
	got, err := os.ReadFile("../../docs/api-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/api-reference.md is stale: run `make manifests` and commit it")
	}
}

// TestWidget checks the cells rendered for each schema feature of a hand-written CRD.
func TestWidget(t *testing.T) {
	doc := renderDir(t, "testdata")
	p := parse(t, doc)
	row := func(section, field string) []string {
		t.Helper()
		cells, ok := p.sections[section][field]
		if !ok {
			t.Fatalf("no row %s in %s:\n%s", field, section, doc)
		}
		return cells
	}
	for _, c := range []struct {
		section, field string
		cell           int
		want           string
	}{
		{"Widget", "spec", 1, "[object](#widgetspec)"},
		{"Widget", "spec", 2, "**required**"},
		{"Widget", "metadata", 1, "[ObjectMeta](" + objectMetaURL + ")"},
		{"Widget", "status", 2, "optional"},
		{"Widget.spec", "mode", 2, "**required**"},
		{"Widget.spec", "mode", 3, "`Small`"},
		{"Widget.spec", "mode", 4, "one of `Small`, `Big`"},
		{"Widget.spec", "replicas", 1, "integer (int32)"},
		{"Widget.spec", "replicas", 4, "0 ≤ value ≤ 10"},
		{"Widget.spec", "size", 1, "[quantity](" + quantityURL + ")"},
		{"Widget.spec", "size", 4, ""},
		{"Widget.spec", "name", 4, "1 ≤ length ≤ 63<br>matches `^[a-z]+$`"},
		{"Widget.spec", "tags", 1, "[]string"},
		{"Widget.spec", "tags", 4, "items ≤ 4<br>items are unique (list type set)<br>each item: one of `a`, `b`"},
		{"Widget.spec", "labels", 1, "map[string]string"},
		{"Widget.spec", "parts", 1, "[[]object](#widgetspecparts)"},
		{"Widget.spec", "parts", 4, "one item per `id` (list type map)"},
		{"Widget.spec.parts[]", "id", 2, "**required**"},
		{"Widget.spec.parts[]", "weight", 3, "`3`"},
	} {
		if got := row(c.section, c.field)[c.cell]; got != c.want {
			t.Errorf("%s.%s cell %d = %q, want %q", c.section, c.field, c.cell, got, c.want)
		}
	}
	for _, want := range []string{
		"- size needs mode Big — rule `!has(self.size) || self.mode == 'Big'`\n",
		"WidgetSpec is the spec. It has &lt;angle&gt; brackets, a \\* star and a | pipe.\n\nSecond paragraph.\n",
		"| Size (wide) | string | `.spec.size` |  |\n",
		"scale subresource (`kubectl scale` sets `.spec.replicas`)",
		"short names `wdg`",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("missing %q in:\n%s", want, doc)
		}
	}
}

func TestSlugCollision(t *testing.T) {
	crds, err := loadCRDs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	// A property named "spec.parts" (with a dot) would get the same anchor as spec.parts[].
	spec := crds[0].Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	spec.Properties["parts."] = apiextv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextv1.JSONSchemaProps{"x": {Type: "string"}}}
	crds[0].Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	if _, err := render(crds, "x"); err == nil || !strings.Contains(err.Error(), "anchor") {
		t.Fatalf("want an anchor collision error, got %v", err)
	}
}
