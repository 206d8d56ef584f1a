// Package runtimeapi serves the Lambda Runtime API
// (/2018-06-01/runtime) of one execution environment: the runtime's
// Runtime Interface Client fetches invocations with next and answers them
// with response or error, or reports a failed Init with init/error.
//
// A Server outlives the runtime processes it serves: the environment calls
// Reset before it starts each new runtime, so one address (for example the
// drop-in emulator's fixed 127.0.0.1:9001) serves every generation.
package runtimeapi
