package main

import "github.com/spf13/cobra"

func newRunCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "run <version>", Short: "Drive a release against production parts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return badInput("run: not wired yet") }}
}
