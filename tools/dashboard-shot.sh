#!/bin/bash
# Takes docs/dashboard.png from a real farm on loopback: a coordinator with its dashboard, two
# workers, two finished jobs (one window, and four windows through the layout pass and chunks)
# and a long job caught while it renders. Needs a release build and Debian's chromium
# (`make deps`). Usage: tools/dashboard-shot.sh [OUT.png]; REEL_SHOT_PORT and
# REEL_SHOT_HTTP_PORT move the farm off ports 45871 and 45872 when those are taken.
set -euo pipefail
cd "$(dirname "$0")/.."
reel=.build/release/reel
[ -x $reel ] || { echo "dashboard-shot.sh: no $reel; build it first with \`make release\`" >&2; exit 1; }
command -v chromium >/dev/null || { echo "dashboard-shot.sh: chromium is not installed; \`make deps\` installs it" >&2; exit 1; }
out=${1:-docs/dashboard.png}
work=$(mktemp -d)
endpoint=tcp://127.0.0.1:${REEL_SHOT_PORT:-45871}
http=127.0.0.1:${REEL_SHOT_HTTP_PORT:-45872}
token=dashboard-shot-token
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

$reel coordinator --insecure --bind "$endpoint" --data-dir "$work/data" --http "$http" --http-token "$token" \
    2> "$work/coordinator.log" & pids+=($!)
for id in worker-a worker-b; do
    $reel worker --insecure --connect "$endpoint" --id "$id" --threads 1 2> "$work/$id.log" & pids+=($!)
done
submit() { $reel submit --insecure --coordinator "$endpoint" "$@"; }
submit "a large red circle moving right on a black background" --wait -o "$work/one.mp4" 2> /dev/null
submit "a small yellow triangle moving down on a gray background" --frames 64 --wait -o "$work/long.mp4" 2> /dev/null
submit "a large blue square moving up and a small green circle moving left on a white background" --frames 64 > /dev/null
sleep "${REEL_SHOT_DELAY:-9}"  # the long job's layout done and its chunks most of the way
chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/profile" \
    --virtual-time-budget=5000 --window-size=1300,1000 --screenshot="$work/shot.png" "http://$http/#token=$token" 2> /dev/null
mv "$work/shot.png" "$out"
echo "wrote $out"
