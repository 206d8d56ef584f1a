// Package build turns a function's folder, or a Lambda Dockerfile, into a
// container image without a container engine.
//
// A folder build detects the runtime (requirements.txt or *.py,
// package.json, go.mod, pom.xml or build.gradle with a built jar,
// Cargo.toml with a built bootstrap, a dotnet publish folder), checks the
// handler without running the code, and adds two layers to a base image:
// the dependencies (pip, npm, the jars of target/dependency, the .NET
// publish folder's libraries), cached by the hash of their inputs and of
// the base, and the code, small and last, so that an edit rebuilds one
// small layer. Lambda layers (--layer) go under /opt in between.
//
// A Dockerfile is parsed with buildkit's parser and built natively when
// every instruction is one build understands (FROM, ARG, ENV, WORKDIR,
// COPY and ADD of local files, LABEL, CMD, ENTRYPOINT, and RUN lines that
// are a pip install --target, an npm ci/install or a dnf/yum/microdnf
// install of Debian packages); otherwise the whole
// build is handed to a container engine.
//
// Builds are reproducible: the same inputs and epoch give the same digest.
package build
