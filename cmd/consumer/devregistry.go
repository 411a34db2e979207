package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/registry"
)

// newDevRegistryCmd runs the in-memory schema registry on its own, for the
// Python producer's end-to-end test and for trying the producer by hand.
// It prints the registry URL as the first line on stdout and serves until
// SIGTERM/interrupt.
func newDevRegistryCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:    "dev-registry",
		Hidden: true,
		Short:  "Run an in-memory Confluent-compatible schema registry (dev and tests only)",
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			addr, err := registry.NewServer().Serve(ctx, listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "http://%s\n", addr)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on (port 0 picks a free port)")
	return cmd
}
