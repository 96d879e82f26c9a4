#!/bin/sh
# corpus.sh CEDAR TARBALL WORKDIR — unpacks Cedar's integration corpus into WORKDIR (a
# build folder, never the source tree) and runs `cedar corpus` over it. The runner prints
# each mismatch and ends with "N passed, N failed" (N = requests).
set -eu
cedar=$1 tarball=$2 work=$3
if [ ! -d "$work/corpus-tests" ]; then
  rm -rf "$work.tmp" && mkdir -p "$work.tmp"
  tar -xzf "$tarball" -C "$work.tmp"
  rm -rf "$work" && mv "$work.tmp" "$work"
fi
exec "$cedar" corpus "$work/corpus-tests"
