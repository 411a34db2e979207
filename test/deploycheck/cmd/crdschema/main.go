// Command crdschema writes a kubeconform JSON schema for every version of every
// CustomResourceDefinition in the given YAML files: the version's openAPIV3Schema, named
// <kind>-<group's first label>-<version>.json as kubeconform's
// "{{ .ResourceKind }}{{ .KindSuffix }}.json" location expects. With -strict, objects that
// list their properties reject others (as kubeconform's own openapi2jsonschema does).
//
//	crdschema -out DIR [-strict] crd.yaml...
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

type crd struct {
	Kind string `yaml:"kind"`
	Spec struct {
		Group string `yaml:"group"`
		Names struct {
			Kind string `yaml:"kind"`
		} `yaml:"names"`
		Versions []struct {
			Name   string `yaml:"name"`
			Schema struct {
				OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
			} `yaml:"schema"`
		} `yaml:"versions"`
	} `yaml:"spec"`
}

func main() {
	out := flag.String("out", "", "directory to write the schemas to")
	strict := flag.Bool("strict", false, "reject properties an object does not list")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: crdschema -out DIR [-strict] crd.yaml...")
		os.Exit(2)
	}
	n := 0
	for _, path := range flag.Args() {
		written, err := convertFile(path, *out, *strict)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crdschema: %s: %v\n", path, err)
			os.Exit(1)
		}
		n += written
	}
	fmt.Printf("crdschema: %d schemas in %s\n", n, *out)
}

func convertFile(path, out string, strict bool) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var c crd
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return n, err
		}
		if c.Kind != "CustomResourceDefinition" {
			continue
		}
		group := strings.SplitN(c.Spec.Group, ".", 2)[0]
		for _, v := range c.Spec.Versions {
			schema := v.Schema.OpenAPIV3Schema
			if schema == nil {
				return n, fmt.Errorf("%s %s: no openAPIV3Schema", c.Spec.Names.Kind, v.Name)
			}
			fix(schema, strict)
			schema["$schema"] = "http://json-schema.org/draft-07/schema#"
			name := strings.ToLower(fmt.Sprintf("%s-%s-%s.json", c.Spec.Names.Kind, group, v.Name))
			buf, err := json.Marshal(schema)
			if err != nil {
				return n, err
			}
			if err := os.WriteFile(filepath.Join(out, name), buf, 0o644); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// fix turns the Kubernetes OpenAPI extensions JSON Schema does not know into plain JSON Schema.
func fix(node any, strict bool) {
	switch n := node.(type) {
	case map[string]any:
		if n["x-kubernetes-int-or-string"] == true {
			delete(n, "type")
			n["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
		}
		if _, listed := n["properties"]; listed && strict {
			if _, set := n["additionalProperties"]; !set && n["x-kubernetes-preserve-unknown-fields"] != true {
				n["additionalProperties"] = false
			}
		}
		for k, v := range n {
			if strings.HasPrefix(k, "x-kubernetes-") {
				delete(n, k)
				continue
			}
			if k == "properties" {
				// Property names are keys, not schema keywords: walk the schemas under them.
				for _, p := range v.(map[string]any) {
					fix(p, strict)
				}
				continue
			}
			fix(v, strict)
		}
	case []any:
		for _, v := range n {
			fix(v, strict)
		}
	}
}
