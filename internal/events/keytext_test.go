package events

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestKeyText(t *testing.T) {
	framed := append([]byte{0, 0, 0, 0, 7}, 0x2a) // length 21, zigzag
	framed = append(framed, "course-v1:OrgX+C1+2024"[:21]...)
	for _, tc := range []struct {
		name string
		key  []byte
		want string
	}{
		{"framed avro string", framed, "course-v1:OrgX+C1+202"},
		{"plain", []byte("OrgX"), "OrgX"},
		{"not text", []byte{0xff, 0x00, 'a'}, `"\xff\x00a"`},
		{"framed with a wrong length stays quoted", []byte{0, 0, 0, 0, 7, 0x08, 'a'}, `"\x00\x00\x00\x00\a\ba"`},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, KeyText(tc.key)) })
	}
}
