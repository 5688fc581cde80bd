#!/usr/bin/env bash
# Trains the default model on for MINUTES in one sitting on a lent GPU machine, where a step
# takes milliseconds instead of this 2-core machine's 2.7 s, and leaves what a later `reel eval`
# needs in $OUT (./device-out outside the device tool): config.json and model.safetensors of
# the run's package, loss.csv, loss.png and the log. From the repository root:
#
#     bash train/device-run.sh [MINUTES] [train.py options]     # MINUTES: 8
#
# It starts from models/reel-shapes' weights with the default model's recipe (--recipe
# reel-shapes) and a fresh optimiser (`--start-from PKG` among the options starts from another
# package of the same shape, such as one an earlier sitting brought back), trains for 85 % of the
# time, then anneals the learning rate over as many steps as the rest of the time holds at the
# rate measured. The GPU waits on clips
# drawn on the CPU, so every core but two draws them (--data-workers). PYTHON picks the
# interpreter (python3, which holds PyTorch there; .venv-train/bin/python here, for a trial on
# the CPU).
set -euo pipefail

minutes=${1:-8}
shift $(( $# > 0 ? 1 : 0 ))
python=${PYTHON:-python3}
out=${OUT:-device-out}
run=${DEVICE_RUN:-/tmp/reel-device-run}
cores=$(nproc)
workers=$(( cores > 3 ? cores - 2 : 1 ))

mkdir -p "$out"
rm -rf "$run"
mkdir -p "$run"
cp -r models/reel-shapes "$run/package"
train=("$python" train/train.py --package "$run/package" --run "$run" --recipe reel-shapes
       --checkpoint-every 1000 --threads 2 --data-workers "$workers")

main=$("$python" -c "print(round($minutes * 0.85, 2))")
PYTHONUNBUFFERED=1 "${train[@]}" --start-from models/reel-shapes --rewarm 100 --minutes "$main" "$@" 2>&1 \
    | tee "$out/train.log"

# The anneal's length: steps a second so far (loss.csv: step, loss, lr, training seconds) times
# the seconds left, less half a minute for starting again.
read -r reached anneal < <("$python" - "$run/loss.csv" "$minutes" "$main" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
first, last = rows[0], rows[-1]
rate = (int(last["step"]) - int(first["step"])) / max(float(last["seconds"]) - float(first["seconds"]), 1e-9)
left = (float(sys.argv[2]) - float(sys.argv[3])) * 60 - 30
print(last["step"], max(10, int(rate * left)))
EOF
)
echo "annealing from step $reached over $anneal steps" | tee -a "$out/train.log"
PYTHONUNBUFFERED=1 "${train[@]}" --anneal-at "$reached" --anneal-steps "$anneal" --steps $(( reached + anneal )) "$@" 2>&1 \
    | tee -a "$out/train.log"

cp "$run/package/config.json" "$run/package/model.safetensors" "$run/loss.csv" "$run/loss.png" "$out/"
echo "in $out: config.json, model.safetensors, loss.csv, loss.png, train.log"
