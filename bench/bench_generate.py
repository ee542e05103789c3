"""Generator throughput (images/s) per configuration and batch on the current device.

    python bench/bench_generate.py [--device cpu|cuda|auto] [--quick] [--precision auto|fp32|bf16|fp16]

Compares with the reference implementation's images/s on a 2-core CPU (../shared/REFERENCES.md); with
--precision auto (the default) fp32 and bf16 (where the device has it) run side by side, case by case.
"""

import argparse

from sneakergan.allocator import keep_freed_memory
from sneakergan.bench import bench_precisions, machine_info, run_generator_benchmarks, time_rows
from sneakergan.generate import resolve_device

if __name__ == "__main__":
    keep_freed_memory()  # as the CLI does (SNEAKERGAN_SYSTEM_MALLOC=1 measures without it)
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    print(machine_info(dev))
    print(time_rows(run_generator_benchmarks(dev, quick=args.quick, precisions=bench_precisions(args.precision, dev))))
