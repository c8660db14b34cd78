#!/usr/bin/env bash
# Build livekit-server (the LiveKit SFU) once from the Go module proxy for the LiveKit
# bridge's integration test, and print the binary's path.
#   .ci/livekit.sh            -> $RSPP_HOME/livekit-server-1.8.4 (default ~/.cache/rspp)
# v1.8.4 is the newest release whose go.mod resolves through the public proxy
# (`go install` refuses its replace directives, so it is built inside the module dir).
set -euo pipefail
VERSION=1.8.4
HOME_DIR="${RSPP_HOME:-$HOME/.cache/rspp}"
OUT="$HOME_DIR/livekit-server-$VERSION"
if [ -x "$OUT" ] && "$OUT" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "$OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "rspp: building livekit-server $VERSION needs Go (https://go.dev/dl/)" >&2
  exit 1
fi
mkdir -p "$HOME_DIR"
echo "rspp: building livekit-server $VERSION (about a minute, once) -> $OUT" >&2
dir=$(go mod download -json "github.com/livekit/livekit-server@v$VERSION" \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['Dir'])")
tmp="$OUT.tmp.$$"
(cd "$dir" && go build -trimpath -o "$tmp" ./cmd/server) >&2
mv -f "$tmp" "$OUT"
echo "$OUT"
