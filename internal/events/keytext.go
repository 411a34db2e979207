package events

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// KeyText is a message key as a person reads it, for logs: the string a
// registry-framed Avro key holds (magic byte, schema id, then the Avro
// string), a plain printable key as it is, anything else quoted with escapes.
// It never fails; it decodes nothing else and checks no schema.
func KeyText(key []byte) string {
	if len(key) > 5 && key[0] == 0 {
		body := key[5:]
		n, size := binary.Varint(body) // Avro's zigzag length
		if size > 0 && n >= 0 && int(n) == len(body)-size && printable(body[size:]) {
			return string(body[size:])
		}
	}
	if printable(key) {
		return string(key)
	}
	return strconv.Quote(string(key))
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}
