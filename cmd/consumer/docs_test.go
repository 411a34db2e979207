package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/store"
)

// The docs stand on their own: every `consumer <command> --flag` the README
// and docs/*.md mention exists in that command's --help (of the built
// binary), every AUTHZ_CONSUMER_* variable they name is a setting, and
// every database URL form they give is accepted, SQLite forms meaning what
// the text says (relative or absolute).
func TestDocsMatchTheBinary(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	require.NoError(t, err)
	files = append(files, filepath.Join("..", "..", "README.md"))
	require.Greater(t, len(files), 3)

	bin := consumerBinary(t)
	helps := map[string]map[string]bool{}
	flagsOf := func(path []string) map[string]bool {
		key := strings.Join(path, " ")
		if f, ok := helps[key]; ok {
			return f
		}
		out, err := exec.Command(bin, append(path, "--help")...).CombinedOutput()
		require.NoError(t, err, "consumer %s --help: %s", key, out)
		f := map[string]bool{"--help": true}
		if len(path) == 0 {
			f["--version"] = true
		}
		_, flagsPart, _ := strings.Cut(string(out), "Flags:")
		for _, m := range regexp.MustCompile(`--[a-z0-9][a-z0-9-]*`).FindAllString(flagsPart, -1) {
			f[m] = true
		}
		helps[key] = f
		return f
	}
	// The Tutor plugin's own settings share the prefix (AUTHZ_CONSUMER_DOCKER_IMAGE, ...): they
	// are Tutor configuration, never passed to the binary.
	known := tutorOnlySettings(t)
	envName := regexp.MustCompile(`AUTHZ_CONSUMER_[A-Z0-9_]*[A-Z0-9]`)
	urlForm := regexp.MustCompile("\\b(?:sqlite3?|mysql|mariadb|postgres(?:ql)?)://[^\\s`'\"()<>|]+")
	root := newRootCmd()

	mentions := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		name := filepath.Base(file)
		for _, chunk := range codeChunks(string(b)) {
			toks := strings.Fields(chunk)
			for i, tok := range toks {
				if tok != "consumer" && !strings.HasSuffix(tok, "/consumer") {
					continue
				}
				path, cmd := []string{}, root
				j := i + 1
				for ; j < len(toks); j++ {
					sub := findSub(cmd, toks[j])
					if sub == nil {
						break
					}
					path, cmd = append(path, toks[j]), sub
				}
				if len(path) == 0 && (j >= len(toks) || !strings.HasPrefix(toks[j], "--")) {
					continue // "consumer group", "the consumer": not a command
				}
				mentions++
				flags := flagsOf(path)
				for ; j < len(toks); j++ {
					t2 := toks[j]
					if t2 == "#" || t2 == "&&" || t2 == ";" || strings.HasPrefix(t2, "#") {
						break
					}
					for _, f := range regexp.MustCompile(`--[a-z0-9][a-z0-9-]*`).FindAllString(t2, -1) {
						require.True(t, flags[f], "%s: `consumer %s` has no flag %s (in %q)", name, strings.Join(path, " "), f, chunk)
					}
				}
			}
		}
		for _, v := range envName.FindAllString(string(b), -1) {
			if !known[v] {
				require.Empty(t, config.UnknownEnv([]string{v + "=x"}), "%s names %s, which is no setting", name, v)
				known[v] = true
			}
		}
		for _, u := range urlForm.FindAllString(string(b), -1) {
			u = strings.TrimRight(u, ".,;:")
			cfg := config.Config{DatabaseURL: u, LogLevel: "info", LogFormat: "json"}
			cfg.Finish()
			require.NoError(t, cfg.ValidateDatabaseOnly(), "%s gives the URL %s", name, u)
			if strings.HasPrefix(u, "sqlite") {
				p, err := store.SQLitePath(u)
				require.NoError(t, err)
				switch {
				case strings.Contains(u, "absolute"):
					require.True(t, filepath.IsAbs(p), "%s: %s names %q, not an absolute path", name, u, p)
				case strings.Contains(u, "relative"), !strings.Contains(u, "////"):
					require.False(t, filepath.IsAbs(p), "%s: %s names %q, not a relative path", name, u, p)
				}
			}
		}
	}
	require.Greater(t, mentions, 50, "the scan finds the commands the docs show")
}

// codeChunks returns the inline code spans and the lines of fenced code
// blocks of a Markdown text: where commands are written.
func codeChunks(md string) []string {
	var out []string
	inBlock := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			out = append(out, line)
			continue
		}
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

// tutorOnlySettings are the Tutor plugin's deployment settings
// (DEPLOYMENT_SETTINGS in python/tutor/tutor_authz_consumer/plugin.py), by
// their Tutor names.
func tutorOnlySettings(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../python/tutor/tutor_authz_consumer/plugin.py")
	require.NoError(t, err)
	_, block, ok := strings.Cut(string(b), "DEPLOYMENT_SETTINGS")
	require.True(t, ok, "plugin.py has no DEPLOYMENT_SETTINGS")
	block, _, _ = strings.Cut(block, "\n}")
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+"([A-Z0-9_]+)":`).FindAllStringSubmatch(block, -1) {
		out["AUTHZ_CONSUMER_"+m[1]] = true
	}
	require.NotEmpty(t, out)
	return out
}
