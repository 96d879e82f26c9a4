#!/usr/bin/env bash
# deps.sh — installs the Debian packages toolgate needs, only those missing.
#   scripts/deps.sh build   what `make` needs to compile
#   scripts/deps.sh run     + what `make run` needs
#   scripts/deps.sh test    + what `make test` needs (clang for fuzzing, nginx, wrk, …)
# Needs root (or sudo) only when something is missing.
set -euo pipefail
level=${1:-build}

build_pkgs=(gcc pkg-config meson ninja-build python3 libuv1-dev libhttp-parser-dev
  libcurl4-openssl-dev libjansson-dev libssl-dev libfyaml-dev libcmocka-dev
  libsqlite3-dev libpq-dev)
run_pkgs=(curl)
test_pkgs=(nodejs npm clang-14 libclang-rt-14-dev nginx-light wrk curl postgresql sqlite3 chromium)

pkgs=("${build_pkgs[@]}")
case "$level" in
  build) ;;
  run) pkgs+=("${run_pkgs[@]}") ;;
  test|bench) pkgs+=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 build|run|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  # nodejs/npm may come from elsewhere (a machine image); accept a working binary.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
