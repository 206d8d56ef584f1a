//go:build lambdabox_emulator

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newBaseCmd is a stub in the emulator build that base images carry
// (-tags lambdabox_emulator), which leaves out the image builder and its
// dependencies to keep the emulator layer small.
func newBaseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "base",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this lambdabox is the emulator build; base images are built by the full lambdabox")
		},
	}
}

// newBuildCmd is the emulator build's stub of lambdabox build.
func newBuildCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "build",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this lambdabox is the emulator build; function images are built by the full lambdabox")
		},
	}
}
