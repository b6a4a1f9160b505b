"""Chooses `pytorch_tuned`'s settings: times PyTorch setting candidates side by side.

Run (from the repository root; needs torch, the `[bench]` extra):

    python benchmarks/tune_pytorch.py                       # every case
    python benchmarks/tune_pytorch.py --cases sample_1x500 --rounds 5
    python benchmarks/tune_pytorch.py --quick --rounds 1    # smoke

For each case, every candidate in `CANDIDATES[kind]` is built once, then all are timed
round-robin (`--rounds` rounds of `--seconds` each, settings re-applied before each
slice) so that load from other processes affects them alike. Prints the median chars/s
per candidate and the best one; copy the winner into `impl_pytorch.TUNED`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import CASES, case_spec  # noqa: E402

CANDIDATES = {
    "train": {
        "default": {},
        "mkldnn_off": {"mkldnn": False},
        "fused_adam": {"fused_adam": True},
        "fused_adam_mkldnn_off": {"fused_adam": True, "mkldnn": False},
        "threads1": {"threads": 1},
        "compile": {"compile": True},
    },
    "eval": {
        "no_grad": {},
        "inference_mode": {"inference_mode": True},
        "inference_mode_mkldnn_off": {"inference_mode": True, "mkldnn": False},
        "inference_mode_threads1": {"inference_mode": True, "threads": 1},
        "compile": {"inference_mode": True, "compile": True},
    },
    "sample": {
        "no_grad": {},
        "inference_mode": {"inference_mode": True},
        "mkldnn_off": {"inference_mode": True, "mkldnn": False},
        "mkldnn_off_threads1": {"inference_mode": True, "mkldnn": False, "threads": 1},
        "script": {"inference_mode": True, "script": True},
        "script_mkldnn_off": {"inference_mode": True, "mkldnn": False, "script": True},
        "script_mkldnn_off_threads1": {
            "inference_mode": True,
            "mkldnn": False,
            "script": True,
            "threads": 1,
        },
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--skip", nargs="*", default=[], help="candidate names to skip")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    from benchmarks import impl_pytorch

    defaults = {"threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.enabled}
    for case in args.cases:
        spec = case_spec(case, args.quick)
        candidates = {k: v for k, v in CANDIDATES[spec.kind].items() if k not in args.skip}
        calls, rates = {}, {name: [] for name in candidates}
        cpu_rates = {name: [] for name in candidates}
        for name, settings in candidates.items():
            impl_pytorch.apply_settings(settings, defaults)
            t0 = time.perf_counter()
            calls[name] = impl_pytorch.CALLS[spec.kind](spec, settings)
            calls[name]()
            calls[name]()
            print(f"{case} {name}: first calls {time.perf_counter() - t0:.1f} s", flush=True)
        for _ in range(args.rounds):
            for name, settings in candidates.items():
                impl_pytorch.apply_settings(settings, defaults)
                count, t0, c0 = 0, time.perf_counter(), time.process_time()
                while True:
                    calls[name]()
                    count += 1
                    if time.perf_counter() - t0 >= args.seconds:
                        break
                rates[name].append(count * spec.chars_per_call / (time.perf_counter() - t0))
                cpu_rates[name].append(count * spec.chars_per_call / (time.process_time() - c0))
        print(f"\n{case}: median chars/s over {args.rounds} rounds [min .. max], chars/CPU-s")
        for name in candidates:
            r = rates[name]
            print(
                f"  {name:28s} {statistics.median(r):10,.0f}  [{min(r):,.0f} .. {max(r):,.0f}]"
                f"  {statistics.median(cpu_rates[name]):10,.0f}"
            )
        best = max(candidates, key=lambda n: statistics.median(rates[n]))
        print(f"  best: {best} {candidates[best]}\n", flush=True)


if __name__ == "__main__":
    main()
