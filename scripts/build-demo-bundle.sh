#!/usr/bin/env bash
# Rebuild the demo bundle shipped in the package (src/gout_edge/demo/bundle) from scratch:
# phantoms → training → export (FP32 + INT8, reference set) → threshold calibration → held-out
# evaluation recorded in the manifest. Every step is a public gout-edge command.
#
#   bash scripts/build-demo-bundle.sh [WORKDIR]        (default WORKDIR: runs/demo)
#
# STAGE=train runs only the phantoms and training (e.g. on a GPU machine, with DEVICE=cuda);
# STAGE=package then runs everything after training from the checkpoint in WORKDIR/train.
#
# Training uses progressive resizing: 14 epochs at half resolution (160 × 350), then 2 epochs of
# fine-tuning at the full 320 × 700 from those weights; the shipped model is the full-size one.
# Takes about 45–60 minutes on 2 CPU cores (training dominates); with STAGE=train DEVICE=cuda on a
# GPU machine training takes under 2 minutes, and STAGE=package then about 15 minutes on 2 cores.
# Every rebuild adds the bundle's size to the repository's history for good: rebuild only when
# its contents must change. The model is trained on synthetic phantoms: NOT FOR CLINICAL USE.
set -euo pipefail
work=${1:-runs/demo}
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/src/gout_edge/demo/bundle"
TRAIN_PATIENTS=${TRAIN_PATIENTS:-110}
TEST_PATIENTS=${TEST_PATIENTS:-40}
THREADS=${THREADS:-2}
DEVICE=${DEVICE:-cpu}
STAGE=${STAGE:-all}
mkdir -p "$work"

[ -f "$work/train-data/index.csv" ] || gout-edge phantom --out "$work/train-data" --patients "$TRAIN_PATIENTS" --seed 1 --format png
if [ "$STAGE" != package ]; then
  gout-edge train --data "$work/train-data/index.csv" --out "$work/train-low" --blocks 3 --folds 0 \
    --input-size 160x350 --epochs 14 --batch-size 32 --lr 3e-3 --threads "$THREADS" --device "$DEVICE"
  gout-edge train --data "$work/train-data/index.csv" --out "$work/train" --blocks 3 --folds 0 \
    --init "$work/train-low/final/model.safetensors" --epochs 2 --batch-size 16 --lr 5e-4 \
    --threads "$THREADS" --device "$DEVICE"
fi
[ "$STAGE" = train ] && exit 0
[ -f "$work/test-data/index.csv" ] || \
  gout-edge phantom --out "$work/test-data" --patients "$TEST_PATIENTS" --seed 2 --format png --no-contact-sheet
# INT8 calibration, its fidelity check and the scope guard use patients the model never saw (seed
# 3), split by patient.
[ -f "$work/calib-data/index.csv" ] || \
  gout-edge phantom --out "$work/calib-data" --patients 30 --seed 3 --format png --no-contact-sheet
rm -rf "$work/bundle"
gout-edge export "$work/train/final/model.safetensors" --out "$work/bundle" --blocks 3 \
  --calib "$work/calib-data/index.csv" --name gout-edge-demo --version 1.1.0 \
  --provenance "synthetic phantoms (gout-edge phantom, seed 1, $TRAIN_PATIENTS patients) — NOT FOR CLINICAL USE; rebuild: bash scripts/build-demo-bundle.sh"
rm -rf "$work/reports/bundle"  # the reports stay beside the bundle, not in the folder the script runs from
gout-edge calibrate --bundle "$work/bundle" --data "$work/train-data/index.csv" --folds 5 --out "$work/reports/bundle/calibration"
gout-edge evaluate --bundle "$work/bundle" --data "$work/test-data/index.csv" --out "$work/reports/bundle/evaluation" --record

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$work/bundle" "$dest"
du -sh "$dest"
# Field verification of the installed copy (a latency miss on a busy machine exits 1: see the record).
gout-edge verify --bundle "$dest" --out "$work/verification.json" || echo "verify exited $?: see $work/verification.json"
