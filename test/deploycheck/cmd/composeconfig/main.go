// Command composeconfig loads docker compose files the way `docker compose config` does, with
// compose-go (the library docker compose is built on): the compose specification's JSON schema,
// interpolation, merging of several -f files and normalization. It prints the resulting model
// as YAML and exits 1 when the files do not load.
//
//	composeconfig [-project NAME] -f docker-compose.yml [-f override.yml]...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var fs files
	flag.Var(&fs, "f", "compose file (repeatable)")
	project := flag.String("project", "check", "project name")
	flag.Parse()
	if len(fs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: composeconfig [-project NAME] -f FILE [-f FILE]...")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(fs, cli.WithName(*project), cli.WithOsEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "composeconfig: %v\n", err)
		os.Exit(1)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintf(os.Stderr, "composeconfig: %v\n", err)
		os.Exit(1)
	}
	out, err := p.MarshalYAML()
	if err != nil {
		fmt.Fprintf(os.Stderr, "composeconfig: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
