package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestVersionFlag(t *testing.T) {
	out, err := consumerCmd(t, "--version")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^consumer \S+.* go1\.\d+`), out)
}
