#!/usr/bin/env bash
# Checks the container build without a container engine: builds the binary as the Containerfile's
# build stage does (release, static Swift standard library), then checks that every shared
# library it needs belongs to a package the runtime stage has: Debian's "required" base, the
# packages on the Containerfile's RUNTIME-PACKAGES line, and their dependencies.
#   deploy/container/check-runtime.sh [BINARY]    (default: build it)
set -euo pipefail
cd "$(dirname "$0")/../.."
containerfile=deploy/container/Containerfile
binary=${1:-}
if [[ -z $binary ]]; then
    swift build -c release --product lmtphook --static-swift-stdlib >/dev/null
    binary="$(swift build -c release --show-bin-path)/lmtphook"
fi
runtime=$(sed -n 's/^# RUNTIME-PACKAGES (check-runtime.sh reads this line): //p' "$containerfile")
[[ -n $runtime ]] || { echo "check-runtime: no RUNTIME-PACKAGES line in $containerfile" >&2; exit 1; }
grep -q "apt-get install -y --no-install-recommends $runtime" "$containerfile" \
    || { echo "check-runtime: the runtime stage does not install exactly: $runtime" >&2; exit 1; }
# What the runtime image has: priority-required packages plus the runtime packages' dependency closure.
allowed=$( (dpkg-query -W -f='${Package} ${Priority}\n' | awk '$2 == "required" {print $1}';
            apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $runtime \
                | grep -v '^ ' | grep -v '^<') | sed 's/:.*//' | sort -u)
status=0
missing_libs=$(ldd "$binary" | awk '/not found/ {print $1}')
[[ -z $missing_libs ]] || { echo "check-runtime: unresolved libraries: $missing_libs" >&2; status=1; }
for lib in $(ldd "$binary" | awk '/=> \// {print $3}'); do
    real=$(readlink -f "$lib")
    package=$(dpkg -S "$real" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true)
    package=${package%%:*}
    if [[ -z $package ]]; then
        echo "check-runtime: $lib belongs to no Debian package (not in the runtime image)" >&2; status=1
    elif ! grep -qx "$package" <<<"$allowed"; then
        echo "check-runtime: $lib comes from $package, which the runtime stage does not install" >&2; status=1
    else
        echo "ok  $lib ($package)"
    fi
done
"$binary" --version >/dev/null
[[ $status == 0 ]] && echo "check-runtime: every library of $(basename "$binary") is in the runtime image ($runtime + base)"
exit $status
