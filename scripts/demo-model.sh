#!/usr/bin/env bash
# Reproduce (or continue) the shipped demo model, demo128, on this machine: `make demo-model`.
#   1. the synthetic training set (deterministic: the same seed gives the same 10,000 images);
#   2. training: a new run, or a resume of runs/demo128 -- seeded from the checkpoint committed under models/
#      when a sitting ended mid-run (a run spans sittings only through that commit);
#   3. export, SeFa directions, curves and a sample grid beside the model.
# DEMO_KIMG sets where training stops (default 200); PRECISION is passed to train (auto: bf16 where native);
# PROCS training processes (default: one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=data/synth128x96.zip
RUN=runs/demo128
RESUME=models/demo128-resume
KIMG=${DEMO_KIMG:-200}
PRECISION=${PRECISION:-auto}
# One process per GPU where there are GPUs; else one per core, one thread each, averaging gradients (torchrun,
# gloo): the step's many small kernels scale badly over two threads of one process, and two processes train demo128
# about 1.2x faster on 2 cores (README, bf16).
PROCS=${PROCS:-$($BIN/python -c "import os, torch; print(torch.cuda.device_count() or os.cpu_count())")}
if [ "$PROCS" -gt 1 ]; then
  TRAIN=(env OMP_NUM_THREADS=1 $BIN/torchrun --standalone --nproc_per_node "$PROCS" -m sneakergan.cli train --threads 1)
else
  TRAIN=($BIN/sneakergan train)
fi

[ -f "$DATA" ] || $BIN/sneakergan synth --count 10000 --resolution 128 --aspect 4:3 --seed 0 --out "$DATA"

if [ ! -e "$RUN/checkpoint-latest.json" ] && [ -e "$RESUME.json" ]; then
  mkdir -p "$RUN"
  cp "$RESUME.safetensors" "$RUN/checkpoint-latest.safetensors"
  cp "$RESUME.json" "$RUN/checkpoint-latest.json"
  [ -e "$RESUME.log.jsonl" ] && cp "$RESUME.log.jsonl" "$RUN/log.jsonl"
fi
if [ -e "$RUN/checkpoint-latest.json" ]; then
  "${TRAIN[@]}" --resume "$RUN" --kimg "$KIMG" --precision "$PRECISION"
else
  # The recipe (models/README.md): R1 gamma 1, ADA that moves p 1 per 100 kimg, and the diversity hinge, which
  # pushes G only while its images are less varied (colour, outline) than the batch's reals. Without it (or with
  # an outline measure that hazy canvases fooled) this network collapsed to one silhouette in two runs, by 71 and by
  # 32 kimg; the run in models/ used weight 1 (fooled) to 32 kimg, then 2 with the canvas-relative outline.
  "${TRAIN[@]}" --data "$DATA" --preset demo128 --kimg "$KIMG" --out "$RUN" --precision "$PRECISION" \
    --snap 8 --tick 2 --aug ada --augpipe bg --ada-kimg 100 --gamma 1 --diversity 2 --seed 1 --workers 1 \
    --metrics div1k --metrics-extractor random-tiny --metrics-every 16 --metrics-num 500
fi
$BIN/sneakergan export --model "$RUN" --out models/demo128 --force
$BIN/sneakergan directions compute --model models/demo128 --num 8
$BIN/sneakergan plot "$RUN" --out models/demo128-curves.png
$BIN/sneakergan generate --model models/demo128 --seeds 0-63 --psi 0.7 --grid --out "$RUN/grid-psi07"
