// Package recipe reads the declarative recipes that describe lambdabox's
// base images: one small TOML file per runtime, embedded in the binary.
//
// A recipe names the one Debian suite its packages come from (bookworm,
// trixie or forky), the language it runs and the AWS Lambda runtime it
// stands for, with that runtime's deprecation date. It lists, for each of
// the three layers that change at different rates (os, runtime, ric), the
// Debian packages to install and the files,
// symlinks and language packages (pip, npm, Maven) to add. The image package
// adds a fourth layer, the entrypoint and emulator, to every image.
package recipe
