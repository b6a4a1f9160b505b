"""probseq speed benchmark: probseq and its peers side by side on this machine.

Run (from the repository root):

    make bench                                   # everything (installs the [bench] extra)
    python benchmarks/run.py                     # same, without the install step
    python benchmarks/run.py --cases train_text8 eval_text8 --implementations probseq tf_keras
    python benchmarks/run.py --quick --repeats 1 --out /tmp/bench   # tiny shapes (tests)

Every (case, implementation) pair runs in a fresh Python subprocess (this script with
`--child`), so the reported peak RSS (`ru_maxrss` of that process) belongs to that pair
alone, and one framework's threads or caches cannot affect another's. The machine's fp32
matmul rate is measured by `benchmarks/matmul_peak.py`, also in its own subprocess.
Output: `OUT/results.json` and `OUT/RESULTS.md` (default `OUT` = `benchmarks/`).

Cases: train_text8, train_charrnn, eval_text8, eval_charrnn, sample_1x500, sample_64x64.
Implementations: probseq (= the faster of probseq_graph and probseq_xla, both run after
`probseq.set_cpu_threads()`; both are run and reported, and so is probseq_tfthreads, the
graph variant with TensorFlow's default threads), tf_keras, tf_keras_xla,
tf_keras_threads (tf_keras with probseq's thread settings), pytorch, pytorch_tuned,
eager_loop (sampling only).
See benchmarks/README.md for the protocol.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.common import CASES, Timer, case_spec  # noqa: E402

# implementation -> (module, framework, kinds of case it runs)
IMPLEMENTATIONS = {
    "probseq_graph": ("benchmarks.impl_probseq", "tf", {"train", "eval", "sample"}),
    "probseq_xla": ("benchmarks.impl_probseq", "tf", {"train", "eval", "sample"}),
    "probseq_tfthreads": ("benchmarks.impl_probseq", "tf", {"train", "eval", "sample"}),
    "probseq_bf16": ("benchmarks.impl_probseq", "tf", {"train", "eval", "sample"}),
    "tf_keras": ("benchmarks.impl_tf_keras", "tf", {"train", "eval", "sample"}),
    "tf_keras_xla": ("benchmarks.impl_tf_keras", "tf", {"train", "eval", "sample"}),
    "tf_keras_threads": ("benchmarks.impl_tf_keras", "tf", {"train", "eval", "sample"}),
    "tf_keras_bf16": ("benchmarks.impl_tf_keras", "tf", {"train", "eval", "sample"}),
    "pytorch": ("benchmarks.impl_pytorch", "torch", {"train", "eval", "sample"}),
    "pytorch_tuned": ("benchmarks.impl_pytorch", "torch", {"train", "eval", "sample"}),
    "pytorch_bf16": ("benchmarks.impl_pytorch", "torch", {"train", "eval", "sample"}),
    "eager_loop": ("benchmarks.impl_eager", "tf", {"sample"}),
}
# User-facing names: `probseq` runs both variants and reports the faster as `probseq`.
ALIASES = {"probseq": ["probseq_graph", "probseq_xla", "probseq_tfthreads"]}
# The variants `probseq` is chosen from (the documented set-up, probseq.set_cpu_threads()).
SELECTED = ["probseq_graph", "probseq_xla"]
PUBLIC = [
    "probseq",
    "probseq_bf16",
    "tf_keras",
    "tf_keras_xla",
    "tf_keras_threads",
    "tf_keras_bf16",
    "pytorch",
    "pytorch_tuned",
    "pytorch_bf16",
    "eager_loop",
]


def runs_list(runs: dict) -> list[dict]:
    """Every round's row of every pair run so far, in the order run."""
    return [row for rows in runs.values() for row in rows]


def _rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_pair(case: str, impl: str, args: argparse.Namespace) -> dict:
    """Run one (case, implementation) pair in this process; returns its result row."""
    module_name, framework, _ = IMPLEMENTATIONS[impl]
    importlib.import_module("tensorflow" if framework == "tf" else "torch")
    baseline = _rss_mb()
    spec = case_spec(case, args.quick)
    timer = Timer(
        spec.chars_per_call, args.repeats, args.min_repeat_seconds, warmup_calls=args.warmup
    )
    load_before = os.getloadavg()[0]
    result = importlib.import_module(module_name).run(impl, spec, timer)
    result.update(
        case=case,
        implementation=impl,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rss_after_import_mb=baseline,
        load_avg_1m=[load_before, os.getloadavg()[0]],
        shapes=dict(
            vocab=spec.vocab,
            hidden=spec.hidden,
            layers=spec.layers,
            steps=spec.steps,
            batch=spec.batch,
        ),
    )
    return result


def child_main(args: argparse.Namespace) -> None:
    """Run one (case, implementation) pair and print its result as one JSON line."""
    result = run_pair(*args.child, args)
    print("BENCH_RESULT " + json.dumps(result), flush=True)


def _child_command(case: str, impl: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, impl]
    cmd += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    cmd += ["--min-repeat-seconds", str(args.min_repeat_seconds)]
    return cmd + (["--quick"] if args.quick else [])


def _run_subprocess(cmd: list[str], timeout: float, marker: str) -> tuple[dict | None, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(marker + " "):
            return json.loads(line[len(marker) + 1 :]), ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return None, f"exit code {proc.returncode}: " + " | ".join(tail)


def machine_info() -> dict:
    """CPU model, core count, relevant CPU flags, memory and package versions."""
    from importlib import metadata

    info: dict = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        fields = dict(
            line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line and line.strip()
        )
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("model name")
        flags = set(fields.get("flags", "").split())
        wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"]
        info["cpu_flags"] = {flag: flag in flags for flag in wanted}
        info["hypervisor"] = "hypervisor" in flags
    except OSError:
        pass
    try:
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    versions = {}
    for package in ["tensorflow", "tensorflow-probability", "tf-keras", "torch", "numpy"]:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["probseq"] = metadata.version("probseq") if _has_dist("probseq") else None
    info["versions"] = versions
    info["load_avg_at_start"] = list(os.getloadavg())
    return info


def _has_dist(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _expand(names: list[str]) -> list[str]:
    out = []
    for name in names:
        for impl in ALIASES.get(name, [name]):
            if impl not in IMPLEMENTATIONS:
                known = sorted(set(IMPLEMENTATIONS) | set(ALIASES))
                raise SystemExit(f"unknown implementation {name!r}; known: {known}")
            if impl not in out:
                out.append(impl)
    return out


def _split_names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def select_probseq(results: list[dict]) -> list[dict]:
    """Add a `probseq` row per case: the faster (by median) of its variants."""
    rows = []
    for case in dict.fromkeys(r["case"] for r in results):
        variants = [
            r
            for r in results
            if r["case"] == case and r["implementation"] in SELECTED and r.get("median")
        ]
        if variants:
            best = max(variants, key=lambda r: r["median"])
            rows.append(dict(best, implementation="probseq", variant=best["implementation"]))
    return rows


def spread_of(medians: list[float]) -> float | None:
    """(max - min) / median of the medians per round; None for fewer than two rounds."""
    if len(medians) < 2:
        return None
    return (max(medians) - min(medians)) / statistics.median(medians)


def _too_spread(runs: dict, args: argparse.Namespace, done: int) -> list[tuple[str, str]]:
    """The pairs to run once more: their spread over rounds is above the target and
    fewer than `--max-rounds` rounds ran."""
    if done >= (args.max_rounds or args.rounds):
        return []
    again = []
    for pair, rows in runs.items():
        medians = [r["median"] for r in rows if r.get("median") is not None]
        spread = spread_of(medians)
        if medians and (spread is None or spread > args.target_spread):
            again.append(pair)
    return again


def merge_rounds(rows: list[dict]) -> dict:
    """One result row from the runs of a pair in several rounds (fresh process each).

    Rates of all repeats are pooled (median/min/max over all of them), compile time is
    the median over rounds, peak RSS the maximum.
    """
    good = [r for r in rows if r.get("median") is not None]
    if not good:
        return rows[-1]
    if len(rows) == 1:
        return dict(rows[0], rounds=1)
    merged = dict(good[-1])
    rates = [rate for r in good for rate in r["rates"]]
    merged.update(
        median=statistics.median(rates),
        min=min(rates),
        max=max(rates),
        rates=rates,
        repeats=len(rates),
        rounds=len(good),
        round_medians=[r["median"] for r in good],
        spread=spread_of([r["median"] for r in good]),
        compile_seconds=statistics.median(r["compile_seconds"] for r in good),
        peak_rss_mb=max(r["peak_rss_mb"] for r in good),
        cpu_per_wall=statistics.median(r["cpu_per_wall"] for r in good),
        load_avg_1m=[x for r in good for x in r["load_avg_1m"]],
        wall_seconds=sum(r["wall_seconds"] for r in rows),
    )
    if len(good) < len(rows):
        merged["failed_rounds"] = [r.get("error") for r in rows if r.get("median") is None]
    return merged


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=None, help=f"subset of {list(CASES)}")
    parser.add_argument(
        "--implementations", nargs="+", default=None, help=f"subset of {PUBLIC} (or variants)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per pair and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls after the first")
    parser.add_argument(
        "--min-repeat-seconds", type=float, default=None, help="min duration of a repeat"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="run every pair this many times, interleaved (pools repeats; for shared machines)",
    )
    parser.add_argument(
        "--target-spread",
        type=float,
        default=0.05,
        help="after --rounds, repeat the pairs whose medians per round differ by more than "
        "this fraction of their median (a 5%% comparison needs <= 0.05)",
    )
    parser.add_argument(
        "--max-rounds", type=int, default=None, help="rounds at most (default: --rounds)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes (for tests)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"), help="output directory")
    parser.add_argument("--no-matmul", action="store_true", help="skip the matmul-rate probe")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pair")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run all pairs in this process (fast, for tests; peak RSS is then cumulative)",
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.min_repeat_seconds is None:
        args.min_repeat_seconds = 0.01 if args.quick else 2.0
    if args.child:
        child_main(args)
        return None

    cases = _split_names(args.cases) or list(CASES)
    for case in cases:
        case_spec(case)  # validates the name
    impls = _expand(_split_names(args.implementations) or PUBLIC)
    torch_available = importlib.util.find_spec("torch") is not None
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = machine_info()
    matmul = None
    if not args.no_matmul:
        print("matmul peak ...", flush=True)
        if args.in_process:
            from benchmarks import matmul_peak

            matmul, error = matmul_peak.measure(args.quick), ""
        else:
            cmd = [sys.executable, str(ROOT / "benchmarks" / "matmul_peak.py"), "--json"]
            matmul, error = _run_subprocess(
                cmd + (["--quick"] if args.quick else []), args.timeout, "MATMUL_RESULT"
            )
        if matmul is None:
            print(f"  matmul probe failed: {error}", flush=True)
            matmul = {"error": error}
        else:
            bf16 = matmul.get("bf16")
            print(
                f"  peak {matmul['peak_gflops']:.1f} GFLOP/s fp32"
                + (f", {bf16['peak_gflops']:.1f} bf16 ({bf16['vs_fp32']:.2f}x)" if bf16 else ""),
                flush=True,
            )
    runs: dict[tuple[str, str], list[dict]] = {}
    pairs = []
    for case in cases:
        kind = case_spec(case).kind
        for impl in impls:
            if kind not in IMPLEMENTATIONS[impl][2]:
                continue
            if IMPLEMENTATIONS[impl][1] == "torch" and not torch_available:
                print(f"{case:14s} {impl:14s} skipped (torch not installed)", flush=True)
                continue
            pairs.append((case, impl))
    round_index = 0
    todo = list(pairs)
    while todo:
        if args.rounds > 1 or round_index:
            print(f"round {round_index + 1} ({len(todo)} pairs)", flush=True)
        for case, impl in todo:
            t0 = time.perf_counter()
            if args.in_process:
                try:
                    row, error = run_pair(case, impl, args), ""
                    row["peak_rss_note"] = "in-process run: cumulative over the pairs run so far"
                except Exception as exc:  # recorded like a failed child (e.g. a Keras refusal)
                    message = " ".join(str(exc).split())[:500]
                    row, error = None, f"{type(exc).__name__}: {message}"
            else:
                cmd = _child_command(case, impl, args)
                row, error = _run_subprocess(cmd, args.timeout, "BENCH_RESULT")
            wall = time.perf_counter() - t0
            if row is None:
                row = {"case": case, "implementation": impl, "error": error}
                print(f"{case:14s} {impl:14s} FAILED: {error}", flush=True)
            else:
                print(
                    f"{case:14s} {impl:14s} {row['median']:12,.0f} chars/s "
                    f"[{row['min']:,.0f} .. {row['max']:,.0f}]  "
                    f"compile {row['compile_seconds']:.1f} s  "
                    f"rss {row['peak_rss_mb']:.0f} MB  ({wall:.0f} s)",
                    flush=True,
                )
            row["wall_seconds"] = wall
            runs.setdefault((case, impl), []).append(row)
            # What is done so far survives an interruption of a long run.
            partial = {"machine": machine, "matmul": matmul, "rows": runs_list(runs)}
            (out_dir / "results.partial.json").write_text(json.dumps(partial) + "\n")
        round_index += 1
        # After the fixed rounds, more rounds for the pairs whose medians per round still
        # differ by more than the target (up to --max-rounds in all).
        todo = list(pairs) if round_index < args.rounds else _too_spread(runs, args, round_index)
    results = [merge_rounds(rows) for rows in runs.values()]
    for row in results:
        row["spread_ok"] = row.get("spread") is not None and row["spread"] <= args.target_spread
    results += select_probseq(results)
    machine["load_avg_at_end"] = list(os.getloadavg())
    document = {
        "machine": machine,
        "matmul": matmul,
        "settings": {
            "quick": args.quick,
            "in_process": args.in_process,
            "repeats": args.repeats,
            "rounds": args.rounds,
            "warmup_calls": args.warmup,
            "min_repeat_seconds": args.min_repeat_seconds,
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
            "wall_seconds": time.time() - started,
        },
        "flops_per_char": report.flops_table(cases, args.quick),
        "results": results,
    }
    (out_dir / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    (out_dir / "RESULTS.md").write_text(report.markdown(document))
    (out_dir / "results.partial.json").unlink(missing_ok=True)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'RESULTS.md'}", flush=True)
    return document


if __name__ == "__main__":
    main()
