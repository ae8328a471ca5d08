package v1alpha1_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestEveryFieldIsDocumented walks the generated CRD schemas: `kubectl explain` shows each
// property's description, so a field without one is a hole in the user documentation.
func TestEveryFieldIsDocumented(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) != 5 {
		t.Fatalf("want 5 CRDs, got %v (%v)", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		var missing []string
		var walk func(path string, s *apiextensionsv1.JSONSchemaProps)
		walk = func(path string, s *apiextensionsv1.JSONSchemaProps) {
			for name, p := range s.Properties {
				p := p
				child := path + "." + name
				// metadata and the well-known condition type document themselves upstream.
				if name == "metadata" || name == "apiVersion" || name == "kind" {
					continue
				}
				if p.Description == "" {
					missing = append(missing, child)
				}
				walk(child, &p)
			}
			if s.Items != nil && s.Items.Schema != nil {
				walk(path+"[]", s.Items.Schema)
			}
		}
		for _, v := range crd.Spec.Versions {
			walk(crd.Spec.Names.Kind, v.Schema.OpenAPIV3Schema)
		}
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s has no description: add a doc comment to the Go field", m)
		}
	}
}
