"""Generator throughput (images/s) per configuration and batch on the current device.

    python bench/bench_generate.py [--device cpu|cuda|auto] [--quick]

Compares with the reference implementation's images/s on a 2-core CPU (../shared/REFERENCES.md).
"""

import argparse

from sneakergan.bench import machine_info, run_generator_benchmarks, time_rows
from sneakergan.generate import resolve_device

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    print(machine_info(dev))
    print(time_rows(run_generator_benchmarks(dev, quick=args.quick)))
