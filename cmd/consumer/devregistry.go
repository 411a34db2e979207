package main

import "github.com/spf13/cobra"

func newDevRegistryCmd() *cobra.Command {
	return &cobra.Command{Use: "dev-registry", Hidden: true, Short: "not implemented yet"}
}
