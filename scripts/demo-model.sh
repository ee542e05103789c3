#!/usr/bin/env bash
# Reproduce (or continue) the shipped demo model, demo64x48, on this machine: `make demo-model`.
#   1. the synthetic training set (deterministic: the same seed gives the same 20,000 images, ~5 minutes);
#   2. training: a new run, or a resume of runs/demo64x48 -- seeded from a full checkpoint committed under
#      models/ as demo64x48-resume.* when there is one (a run spans sittings only through that commit: the shipped
#      run's own, at its last kimg, so a plain `make demo-model` trains nothing: it exports and draws);
#   3. export, SeFa directions, curves and a sample grid beside the model.
# DEMO_KIMG sets where training stops (default: the shipped model's kimg, so a fresh run retraces it in about
# 3 hours on 2 cores; a resume goes on from runs/demo64x48's checkpoint); PRECISION is passed to train (auto: bf16 where
# native); PROCS training processes (default: one per core). Directions keep the names set in
# models/demo64x48.directions.json; after a retrain look at `sneakergan directions show` and rename them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=data/synth64x48.zip
RUN=runs/demo64x48
RESUME=models/demo64x48-resume
MODEL=models/demo64x48
SHIPPED_KIMG=$($BIN/python -c "import json; print(json.load(open('$MODEL.json'))['state']['kimg'])" 2>/dev/null || echo 760)
KIMG=${DEMO_KIMG:-$SHIPPED_KIMG}
PRECISION=${PRECISION:-auto}
# One process per GPU where there are GPUs; else one per core, one thread each, averaging gradients (torchrun,
# gloo): the step's many small kernels scale badly over two threads of one process, and two processes train
# about 1.2x faster on 2 cores (README, bf16).
PROCS=${PROCS:-$($BIN/python -c "import os, torch; print(torch.cuda.device_count() or os.cpu_count())")}
if [ "$PROCS" -gt 1 ]; then
  TRAIN=(env OMP_NUM_THREADS=1 $BIN/torchrun --standalone --nproc_per_node "$PROCS" -m sneakergan.cli train --threads 1)
else
  TRAIN=($BIN/sneakergan train)
fi

[ -f "$DATA" ] || $BIN/sneakergan synth --count 20000 --resolution 64 --aspect 4:3 --seed 0 --out "$DATA"

if [ ! -e "$RUN/checkpoint-latest.json" ] && [ -e "$RESUME.json" ]; then
  mkdir -p "$RUN"
  cp "$RESUME.safetensors" "$RUN/checkpoint-latest.safetensors"
  cp "$RESUME.json" "$RUN/checkpoint-latest.json"
  [ -e "$RESUME.log.jsonl" ] && cp "$RESUME.log.jsonl" "$RUN/log.jsonl"
fi
# The recipe (models/README.md). Leg 1, from scratch to 760 kimg at batch 64 (more images per step keep the bf16
# units busier: 1.16x the img/s of batch 32 on 2 cores, and per kimg as varied a model): R1 gamma 1, ADA on blit +
# geometry moving p 1 per 100 kimg, and a kernel MMD between the fakes and the batch's reals on coarse images and
# outlines (weight 4), which pays G for covering the data rather than for one good silhouette: without a term like
# it this network family collapsed to one silhouette in two runs (by 71 and by 32 kimg). Then the same run resumed
# with the neighbour-spread hinge (fakes as far from their nearest recent fakes as reals from theirs) and the
# nearest-sample pull (each real draws its nearest fake), which unclumped the samples (pixel-PCA recall 0.19 ->
# 0.51), in the steps the shipped model took: "until-kimg flags", the last one running to DEMO_KIMG.
LEGS=("776 --spread 4 --cover 2" "800 --spread 4 --cover 4" "$KIMG --spread 8 --cover 4")
upto() { $BIN/python -c "print(min($1, $KIMG))"; }  # a leg's end, never past DEMO_KIMG
short_of() {  # the run's checkpoint is below this kimg
  $BIN/python -c "import json, sys; sys.exit(json.load(open('$RUN/checkpoint-latest.json'))['state']['kimg'] >= $1)"
}
if [ ! -e "$RUN/checkpoint-latest.json" ]; then
  "${TRAIN[@]}" --data "$DATA" --preset demo64x48 --kimg "$(upto 760)" --out "$RUN" \
    --precision "$PRECISION" --batch 64 --snap 8 --tick 2 --aug ada --augpipe bg --ada-kimg 100 --gamma 1 --mmd 4 --seed 1 \
    --workers 1 --metrics div1k --metrics-extractor random-tiny --metrics-every 16 --metrics-num 500
fi
if short_of "$(upto 760)"; then
  "${TRAIN[@]}" --resume "$RUN" --kimg "$(upto 760)" --precision "$PRECISION"
fi
for leg in "${LEGS[@]}"; do
  read -r until flags <<<"$leg"
  if short_of "$(upto "$until")"; then
    # shellcheck disable=SC2086  # flags are words
    "${TRAIN[@]}" --resume "$RUN" --kimg "$(upto "$until")" --precision "$PRECISION" --metrics-every 8 $flags
  fi
done
$BIN/sneakergan export --model "$RUN" --out "$MODEL" --force
$BIN/sneakergan directions compute --model "$MODEL" --num 8
$BIN/sneakergan plot "$RUN" --out "$MODEL-curves.png"
$BIN/sneakergan generate --model "$MODEL" --seeds 0-63 --psi 0.7 --grid --out "$RUN/grid-psi07"
$BIN/sneakergan metrics --model "$MODEL" --data "$DATA" --metrics div1k --extractor random-tiny --num 1000
