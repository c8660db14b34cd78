#!/usr/bin/env bash
# Build Jaeger all-in-one (an OTLP receiver with a query API) once from the Go module proxy
# for the trace export test, and print the binary's path.
#   .ci/jaeger.sh            -> $RSPP_HOME/jaeger-all-in-one-1.75.0 (default ~/.cache/rspp)
# Built inside the module dir like livekit-server (.ci/livekit.sh): its go.mod has a
# replace directive that `go install` refuses.
set -euo pipefail
VERSION=1.75.0
HOME_DIR="${RSPP_HOME:-$HOME/.cache/rspp}"
OUT="$HOME_DIR/jaeger-all-in-one-$VERSION"
if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "rspp: building jaeger all-in-one $VERSION needs Go (https://go.dev/dl/)" >&2
  exit 1
fi
mkdir -p "$HOME_DIR"
echo "rspp: building jaeger all-in-one $VERSION (several minutes, once) -> $OUT" >&2
dir=$(go mod download -json "github.com/jaegertracing/jaeger@v$VERSION" \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['Dir'])")
tmp="$OUT.tmp.$$"
(cd "$dir" && go build -trimpath -o "$tmp" ./cmd/all-in-one) >&2
mv -f "$tmp" "$OUT"
echo "$OUT"
