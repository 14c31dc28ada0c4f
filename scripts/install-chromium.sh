#!/usr/bin/env bash
# Chromium for the browser tests (tests/web): installs Debian's `chromium` package when
# /usr/bin/chromium is missing. Playwright (the `test` extra) drives it; Playwright's own
# browser download (`playwright install`) is never used.
#
#   bash scripts/install-chromium.sh     prints the path of the chromium binary as its LAST
#                                        line, installing the package first if needed (root
#                                        and apt-get required; otherwise it fails saying how).
#
# scripts/run-tests.sh calls it in CI (CI=true) or with SHOAL_CHROMIUM=1; elsewhere, without
# the binary, the browser tests skip with a message naming this script (and in CI a skip of
# those tests is a failure: tests/web/conftest.py).
set -euo pipefail

die() { echo "install-chromium: $*" >&2; exit 1; }

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  echo "$CHROMIUM"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  die "$CHROMIUM is missing and this is not root: install it with 'sudo apt-get install chromium', then rerun"
fi
command -v apt-get >/dev/null || die "$CHROMIUM is missing and there is no apt-get to install Debian's chromium package"
echo "install-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || die "apt-get update failed"
apt-get install -y -qq chromium >&2 || die "apt-get install chromium failed"
[ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is not there"
echo "$CHROMIUM"
