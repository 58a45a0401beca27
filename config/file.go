package config

// The cluster file: reading it with errors that point at the offending
// line and field, and writing it atomically.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/braid-bft/braid/internal/atomicfile"
)

// maxFileSize bounds how much Load reads.
const maxFileSize = 16 << 20

// Load reads, defaults and validates the configuration at path. On a
// validation failure it returns the problems (every one, each naming its
// field) and no Config.
func Load(path string) (*Config, error) {
	data, err := atomicfile.ReadLimited(path, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	return c, nil
}

// Parse decodes, defaults and validates a configuration held in memory.
// Relative paths in it resolve against the working directory until SetDir.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return c, nil
}

// decode is the strict JSON decoding step of Parse.
func decode(data []byte) (*Config, error) {
	if err := checkKeys(data, nil); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config: %s: unexpected data after the configuration object", position(data, dec.InputOffset()))
	}
	return &c, nil
}

// decodeError rewrites encoding/json's errors to name the field and the
// line.
func decodeError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("config: %s: %v", position(data, syn.Offset), syn)
	case errors.As(err, &typ):
		ends := map[int64]string{}
		checkKeys(data, ends)
		field, ok := ends[typ.Offset]
		if !ok || field == "" {
			field = typ.Field // encoding/json's path, without list indices
		}
		if field == "" {
			field = "(top level)"
		}
		return &FieldError{Field: field, Msg: fmt.Sprintf("a JSON %s, want %s (%s)", typ.Value, jsonKind(typ.Type.Kind().String()), position(data, typ.Offset))}
	case errors.Is(err, io.EOF):
		return errors.New("config: the file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("config: the file ends in the middle of the configuration")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name, _ = strconv.Unquote(name)
		return &FieldError{Field: name, Msg: "unknown field"}
	}
	return fmt.Errorf("config: %w", err)
}

func jsonKind(kind string) string {
	switch kind {
	case "int", "int64":
		return "an integer"
	case "uint64", "uint32":
		return "a non-negative integer"
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "struct":
		return "an object"
	}
	return kind
}

// position turns a byte offset into "line L, column C".
func position(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int64(len(before)-bytes.LastIndexByte(before, '\n')-1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// checkKeys rejects what encoding/json would accept silently: a key given
// twice in one object (the last would win) and a key in the wrong case
// (json matches case-insensitively). All of the file's keys are lowercase.
//
// If ends is not nil it also records, for every scalar value, the path of
// its field (with list indices) by the offset just past it, so that type
// errors can name the exact element.
func checkKeys(data []byte, ends map[int64]string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		path   string
		seen   map[string]bool
		index  int
		key    string // the key whose value comes next (objects)
	}
	var stack []*frame
	childPath := func() string {
		if len(stack) == 0 {
			return ""
		}
		top := stack[len(stack)-1]
		if top.object {
			if top.path == "" {
				return top.key
			}
			return top.path + "." + top.key
		}
		return fmt.Sprintf("%s[%d]", top.path, top.index)
	}
	afterValue := func() {
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.object {
				top.key = ""
			} else {
				top.index++
			}
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // syntax errors are reported by the decoding pass, with a position
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, &frame{object: t == '{', path: childPath(), seen: map[string]bool{}})
			case '}', ']':
				stack = stack[:len(stack)-1]
				afterValue()
			}
			continue
		case string:
			if top := len(stack) - 1; top >= 0 && stack[top].object && stack[top].key == "" {
				f := stack[top]
				f.key = t
				field := childPath()
				if t != strings.ToLower(t) {
					return &FieldError{Field: field, Msg: "unknown field (field names are lowercase: " + strings.ToLower(t) + ")"}
				}
				if f.seen[t] {
					return &FieldError{Field: field, Msg: "given more than once"}
				}
				f.seen[t] = true
				continue
			}
		}
		if ends != nil {
			ends[dec.InputOffset()] = childPath()
		}
		afterValue()
	}
}

// Save validates c and writes it to path as indented JSON, atomically (a
// temporary file renamed over path, then the directory synced) with permissions 0644: the file holds
// no secrets. Relative paths in c are written as they are and from then on
// resolve against path's directory.
func (c *Config) Save(path string) (err error) {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("config: not saving an invalid configuration:\n%w", err)
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := atomicfile.WriteBytes(path, 0o644, data); err != nil {
		return fmt.Errorf("config: saving: %w", err)
	}
	c.dir = dir
	return nil
}

// Marshal returns c as the indented JSON Save writes.
func (c *Config) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config: encoding: %w", err)
	}
	return append(data, '\n'), nil
}
