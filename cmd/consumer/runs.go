package main

import "github.com/spf13/cobra"

func newRunsCmd() *cobra.Command {
	return &cobra.Command{Use: "runs", Short: "not implemented yet"}
}
