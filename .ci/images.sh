#!/usr/bin/env bash
# Installs what the base image tests need (lambdabox base build, TestBaseImages):
# Podman with runc (crun fails in this sandbox), the Debian archive keyring,
# dpkg-deb, pip for the host Python, Maven (the java17 recipe's RIC) and a JDK
# (the Java test compiles its handler), and Debian's docker-registry (the CNCF
# distribution server) that the lambdabox build push test starts on 127.0.0.1.
# Idempotent; run it before the tests.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in podman runc uidmap slirp4netns fuse-overlayfs debian-archive-keyring dpkg maven openjdk-17-jdk-headless docker-registry; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m pip --version >/dev/null
# The nodejs recipe fetches aws-lambda-ric with the host's npm (any version;
# its addon is built in a chroot against the image's Node 18).
command -v npm >/dev/null || echo "images: no npm on PATH: the nodejs base image test will fail" >&2
# A quick check that containers start here with the flags the tests use.
podman info >/dev/null
echo "images: podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
