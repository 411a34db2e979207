package main

import "github.com/spf13/cobra"

func newParkedCmd() *cobra.Command {
	return &cobra.Command{Use: "parked", Short: "not implemented yet"}
}
