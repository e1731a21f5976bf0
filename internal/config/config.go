// Package config holds the typed key/value configuration of handlers and inputs, with the
// reference's typing rules for YAML scalars (spec §4.1): a scalar of digits only is an unsigned
// integer, true/false (any case) a boolean, anything else a string; a sequence of scalars is a
// string list; a map is a nested Map. Typed accessors return the reference's error text when a
// key holds the wrong type.
package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Map is one configuration level. Values are uint64, bool, string, []string or Map.
type Map map[string]any

var digits = regexp.MustCompile(`^[0-9]+$`)

// Scalar types a YAML scalar the way the reference does.
func Scalar(s string) any {
	if digits.MatchString(s) {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v
		}
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	return s
}

// FromNode converts a YAML mapping node into a Map.
func FromNode(n *yaml.Node) (Map, error) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("configuration is not a map")
	}
	m := Map{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue
			}
			m[k] = Scalar(v.Value)
		case yaml.SequenceNode:
			list := make([]string, 0, len(v.Content))
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: sequence elements must be scalars", k)
				}
				list = append(list, e.Value)
			}
			m[k] = list
		case yaml.MappingNode:
			sub, err := FromNode(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = sub
		case yaml.AliasNode:
			return nil, fmt.Errorf("%s: YAML aliases are not supported", k)
		}
	}
	return m, nil
}

// Parse reads a YAML document holding a map.
func Parse(data []byte) (Map, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if n.Kind == 0 {
		return Map{}, nil
	}
	return FromNode(&n)
}

// WrongType is the reference's error for a key holding another type than expected.
func WrongType(key string) error { return fmt.Errorf("wrong type for key: %s", key) }

// Has reports whether key is set.
func (m Map) Has(key string) bool { _, ok := m[key]; return ok }

// Uint returns an unsigned integer value.
func (m Map) Uint(key string) (v uint64, ok bool, err error) {
	raw, ok := m[key]
	if !ok {
		return 0, false, nil
	}
	v, isUint := raw.(uint64)
	if !isUint {
		return 0, true, WrongType(key)
	}
	return v, true, nil
}

// Bool returns a boolean value.
func (m Map) Bool(key string) (v bool, ok bool, err error) {
	raw, ok := m[key]
	if !ok {
		return false, false, nil
	}
	v, isBool := raw.(bool)
	if !isBool {
		return false, true, WrongType(key)
	}
	return v, true, nil
}

// String returns a string value.
func (m Map) String(key string) (v string, ok bool, err error) {
	raw, ok := m[key]
	if !ok {
		return "", false, nil
	}
	v, isStr := raw.(string)
	if !isStr {
		return "", true, WrongType(key)
	}
	return v, true, nil
}

// List returns a string list value.
func (m Map) List(key string) (v []string, ok bool, err error) {
	raw, ok := m[key]
	if !ok {
		return nil, false, nil
	}
	v, isList := raw.([]string)
	if !isList {
		return nil, true, WrongType(key)
	}
	return v, true, nil
}

// Sub returns a nested map.
func (m Map) Sub(key string) (v Map, ok bool, err error) {
	raw, ok := m[key]
	if !ok {
		return nil, false, nil
	}
	v, isMap := raw.(Map)
	if !isMap {
		return nil, true, WrongType(key)
	}
	return v, true, nil
}

// Merge returns a copy of m with the keys of over set on top (over wins).
func (m Map) Merge(over Map) Map {
	out := make(Map, len(m)+len(over))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// CheckKeys rejects keys outside valid (plus extra, which are accepted but not listed) with
// the reference's message, which lists valid in declaration order.
func (m Map) CheckKeys(valid []string, extra ...string) error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(valid, k) && !slices.Contains(extra, k) {
			return fmt.Errorf("%s is an invalid/unsupported config or filter. The valid configs/filters are: %s", k, strings.Join(valid, ", "))
		}
	}
	return nil
}
