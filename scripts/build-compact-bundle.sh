#!/usr/bin/env bash
# Rebuild the compact demo bundle shipped in the package (src/gout_edge/demo/compact): a student
# of the paper's model (stem width 32, input 224 × 490: 0.75 GMAC against 5.93) distilled from the
# shipped paper bundle (src/gout_edge/demo/bundle, the teacher), on the same phantoms and split:
# phantoms → distillation (`gout-edge train --teacher`) → export (FP32 + INT8, scope guard,
# reference set) → threshold calibration → held-out evaluation against the teacher, recorded in
# the student's manifest (evaluation.held_out and evaluation.fidelity). Why this variant:
# docs/design.md §9b (benchmarks/student_variants.py measures the candidates).
#
#   bash scripts/build-compact-bundle.sh [WORKDIR]        (default WORKDIR: runs/demo)
#
# Shares WORKDIR's phantoms with scripts/build-demo-bundle.sh (same seeds). Takes about 35–45
# minutes on 2 CPU cores (distillation about 25). The model is trained on synthetic phantoms:
# NOT FOR CLINICAL USE.
set -euo pipefail
work=${1:-runs/demo}
here=$(cd "$(dirname "$0")/.." && pwd)
teacher="$here/src/gout_edge/demo/bundle"
dest="$here/src/gout_edge/demo/compact"
TRAIN_PATIENTS=${TRAIN_PATIENTS:-110}
TEST_PATIENTS=${TEST_PATIENTS:-40}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
mkdir -p "$work"

[ -f "$work/train-data/index.csv" ] || gout-edge phantom --out "$work/train-data" --patients "$TRAIN_PATIENTS" --seed 1 --format png
[ -f "$work/test-data/index.csv" ] || \
  gout-edge phantom --out "$work/test-data" --patients "$TEST_PATIENTS" --seed 2 --format png --no-contact-sheet
[ -f "$work/calib-data/index.csv" ] || \
  gout-edge phantom --out "$work/calib-data" --patients 30 --seed 3 --format png --no-contact-sheet
gout-edge train --data "$work/train-data/index.csv" --out "$work/student" --folds 0 --width 32 --input-size 224x490 \
  --teacher "$teacher" --epochs 16 --batch-size 32 --lr 3e-3 --threads "$THREADS" --device "$DEVICE"
rm -rf "$work/compact"
gout-edge export "$work/student/final/model.safetensors" --out "$work/compact" \
  --calib "$work/calib-data/index.csv" --name gout-edge-demo-compact --version 1.1.0 \
  --provenance "student of gout-edge-demo 1.1.0 (distilled: width 32, 224x490) on synthetic phantoms (gout-edge phantom, seed 1, $TRAIN_PATIENTS patients) — NOT FOR CLINICAL USE; rebuild: bash scripts/build-compact-bundle.sh"
rm -rf "$work/reports/compact"  # the reports stay beside the bundle, not in the folder the script runs from
gout-edge calibrate --bundle "$work/compact" --data "$work/train-data/index.csv" --folds 5 --out "$work/reports/compact/calibration"
gout-edge evaluate --bundle "$work/compact" --data "$work/test-data/index.csv" --out "$work/reports/compact/evaluation" --compare "$teacher" --record

rm -rf "$dest"
cp -r "$work/compact" "$dest"
du -sh "$dest"
gout-edge verify --bundle "$dest" --out "$work/verification-compact.json" || echo "verify exited $?: see $work/verification-compact.json"
