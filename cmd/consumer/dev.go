package main

import "github.com/spf13/cobra"

func newDevCmd() *cobra.Command {
	return &cobra.Command{Use: "dev", Short: "not implemented yet"}
}
