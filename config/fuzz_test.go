package config

import (
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts re-encodes to a
// file that parses back to the same configuration.
func FuzzParse(f *testing.F) {
	good, err := validConfig(f, 4, 0, 2).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"n": 1, "replicas": [{"id": 0, "addr": "a:1", "client_addr": "a:2", "public_key": "00"}]}`))
	f.Add([]byte(`{"n": 4, "n": 4}`))
	f.Add([]byte(`[{"replicas": [[]]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		_ = c.Warnings()
		again, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded config does not parse: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%s", again)
		}
	})
}
