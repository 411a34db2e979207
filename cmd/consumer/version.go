package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
// Without it, the module version or the VCS revision the binary was built
// from is shown.
var version = ""

// buildInfo is the version ("dev" when unknown), the VCS revision (short,
// "" when unknown) and whether the tree had changes.
func buildInfo() (v, rev string, dirty bool) {
	v = version
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return v, rev, dirty
}

// versionString is what --version prints: the version, the commit and
// whether the tree had changes, and the Go version.
func versionString() string {
	v, rev, dirty := buildInfo()
	if rev != "" {
		v += " (" + rev
		if dirty {
			v += ", modified"
		}
		v += ")"
	}
	return fmt.Sprintf("%s %s", v, runtime.Version())
}
