// Command consumer is the one binary of authz-flag-consumer: the Kafka
// consumer (run), the one-command demo (dev), manual migrations, and the
// operator tools. Configuration comes from flags and AUTHZ_CONSUMER_*
// environment variables and is read here only.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "consumer",
		Short:         "Keep Open edX course-authoring roles where the authz.enable_course_authoring flag says",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			for _, w := range config.UnknownEnv(os.Environ()) {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
		},
	}
	root.SetVersionTemplate("consumer {{.Version}}\n")
	root.AddCommand(
		newSchemaCmd(),
		newMigrateCmd(),
		newRollbackCmd(),
		newVerifyCmd(),
		newReconcileCmd(),
		newRunsCmd(),
		newRunCmd(),
		newDevCmd(),
		newPublishCmd(),
		newReplayCmd(),
		newParkedCmd(),
		newTopicsCmd(),
		newDevRegistryCmd(),
	)
	return root
}
