#!/bin/sh
# Regenerates deploy/man/lmtphook.8 from the command line's own help (swift-argument-parser's
# generate-manual, as its generate-manual plugin runs it, without the plugin's release build).
# A test (OperationsTests "the committed man page is what generate-manual makes now") fails while
# the committed page differs from a fresh generation.
#
#   deploy/man/generate.sh          after changing a command, option or help text
set -eu
cd "$(dirname "$0")/../.."
swift build --product lmtphook >&2
swift build --product generate-manual >&2
.build/debug/generate-manual .build/debug/lmtphook --section 8 --date 2026-12-02 --output-directory deploy/man
echo "deploy/man/lmtphook.8 regenerated" >&2
