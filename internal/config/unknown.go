package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// notSettings are AUTHZ_CONSUMER_* names that are not settings but are not
// mistakes either: AUTHZ_CONSUMER_BIN names the binary for the test tiers.
var notSettings = map[string]bool{EnvPrefix + "BIN": true}

// UnknownEnv returns a warning for every AUTHZ_CONSUMER_* variable of
// environ ("K=V" entries, as os.Environ gives them) that is no setting of
// any command, with the setting it most likely means. A misspelled
// variable would otherwise be ignored without a word.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
	Register(fs, &Config{})
	fs.VisitAll(func(f *pflag.Flag) { known[EnvVar(f.Name)] = true })
	var warnings []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || notSettings[name] {
			continue
		}
		w := fmt.Sprintf("warning: %s is not a setting and is ignored", name)
		if near := nearest(name, known); near != "" {
			w += fmt.Sprintf(" (did you mean %s?)", near)
		}
		warnings = append(warnings, w)
	}
	sort.Strings(warnings)
	return warnings
}

// nearest is the known name closest to name, if it is close (a typo).
func nearest(name string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(name, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
