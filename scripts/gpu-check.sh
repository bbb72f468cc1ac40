#!/usr/bin/env bash
# Compare mlenv's fingerprint with nvidia-smi on a machine with an NVIDIA GPU.
# Prints both and exits 1 where they disagree on name, driver version,
# compute capability, total memory or MIG mode.
#
#   scripts/gpu-check.sh [path/to/mlenv]
set -euo pipefail
MLENV=${1:-mlenv}
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: run this on a host with an NVIDIA driver" >&2; exit 2; }
command -v python3 >/dev/null || { echo "gpu-check: python3 is needed to compare the outputs" >&2; exit 2; }
fp=$(mktemp); smi=$(mktemp); trap 'rm -f "$fp" "$smi"' EXIT
"$MLENV" fingerprint --output json >"$fp"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total,mig.mode.current --format=csv >"$smi"
echo "== nvidia-smi"; cat "$smi"
echo "== mlenv fingerprint (GPU part)"
python3 - "$fp" "$smi" <<'PY'
import csv, json, sys
fp = json.load(open(sys.argv[1]))
rows = list(csv.reader(open(sys.argv[2]), skipinitialspace=True))[1:]
gpu = fp["gpu"]
print(json.dumps({k: gpu.get(k) for k in ("available", "reason", "driverVersion", "cudaDriverVersion")}))
bad = 0
if not gpu.get("available"):
    print("MISMATCH: mlenv read no GPU:", gpu.get("reason")); sys.exit(1)
if len(rows) != len(gpu["devices"]):
    print(f"MISMATCH: nvidia-smi lists {len(rows)} GPUs, mlenv {len(gpu['devices'])}"); sys.exit(1)
for row, d in zip(rows, gpu["devices"]):
    name, driver, cc, mem, mig = row
    mib = int(mem.split()[0])
    mine = {"name": d.get("name"), "driver_version": gpu.get("driverVersion"), "compute_cap": d.get("computeCapability"),
            "memory.total [MiB]": d.get("memoryTotalBytes", 0) // (1 << 20), "mig.mode.current": "Enabled" if d.get("migMode", {}).get("current") else "Disabled"}
    theirs = {"name": name, "driver_version": driver, "compute_cap": cc, "memory.total [MiB]": mib, "mig.mode.current": mig}
    print(f"gpu {d['index']}: {json.dumps(mine)}")
    for k in mine:
        if str(mine[k]) != str(theirs[k]):
            print(f"MISMATCH gpu {d['index']} {k}: mlenv {mine[k]!r}, nvidia-smi {theirs[k]!r}"); bad = 1
print("gpu-check: " + ("DISAGREE" if bad else "agree on every compared field"))
sys.exit(bad)
PY
