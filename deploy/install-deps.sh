#!/usr/bin/env bash
# Installs what lmtphook needs on Debian/Ubuntu (Swift itself must already be installed).
#   deploy/install-deps.sh          build dependencies (libcurl headers)
#   deploy/install-deps.sh --test   plus the real peers and tools the test suite uses (postfix, swaks, msmtp, python3 with jsonschema, systemd-analyze, curl, openssl for a self-signed test certificate)
# Postfix is installed with "No configuration": it does not start a system mail server; the tests
# run their own throwaway instance in a temporary directory.
set -euo pipefail
packages=(libcurl4-openssl-dev libsqlite3-dev pkg-config ca-certificates)
if [[ ${1:-} == --test ]]; then packages+=(postfix swaks msmtp python3 python3-jsonschema python3-pyfuse3 fuse3 systemd curl openssl); fi

command -v swift >/dev/null || { echo "install-deps: swift is not on PATH (Swift 6.1 or newer is needed)" >&2; exit 1; }

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: ok (${packages[*]})" >&2
