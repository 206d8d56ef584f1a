// Package image builds OCI images without a Docker daemon, with
// go-containerregistry: deterministic layers from in-memory file trees,
// image configs with a fixed creation time, and atomic outputs (an OCI
// layout directory, a docker-loadable tarball, a registry, or a local
// Docker or Podman engine).
//
// Determinism: a Tree is written as a tar with its entries sorted by path,
// every parent directory present, mtimes set to one epoch
// (SOURCE_DATE_EPOCH, 0 by default), uid and gid 0 with empty names, and
// modes normalised (0755 for directories and executables, 0644 for other
// files). Same tree and epoch ⇒ same bytes ⇒ same digest.
package image
