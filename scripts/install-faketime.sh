#!/usr/bin/env bash
# libfaketime for the clock-skew fault test (tests/faults): installs Debian's `faketime`
# package (the `faketime` command and its preload library) when the command is missing.
#
#   bash scripts/install-faketime.sh     prints the path of the `faketime` command as its LAST
#                                        line, installing the package first if needed (root and
#                                        apt-get required; otherwise it fails saying how).
#
# scripts/run-tests.sh calls it in CI (CI=true) or with SHOAL_FAKETIME=1; elsewhere, without
# the command, the clock-skew test skips with a message naming this script (and in CI a skip
# of that test is a failure: tests/faults/conftest.py).
set -euo pipefail

die() { echo "install-faketime: $*" >&2; exit 1; }

if command -v faketime >/dev/null 2>&1; then
  command -v faketime
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  die "the faketime command is missing and this is not root: install it with 'sudo apt-get install faketime', then rerun"
fi
command -v apt-get >/dev/null || die "the faketime command is missing and there is no apt-get to install Debian's faketime package"
echo "install-faketime: installing Debian's faketime package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq faketime >&2 || die "apt-get install faketime failed"
command -v faketime >/dev/null 2>&1 || die "faketime installed but the command is not on PATH"
command -v faketime
