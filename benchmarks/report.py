"""Writes `RESULTS.md` from the results document of `benchmarks/run.py` (not a script).

To re-render an existing results file:

    python -c "import json, sys; sys.path.insert(0, '.'); from benchmarks import report; \
print(report.markdown(json.load(open('benchmarks/results.json'))))"
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import case_spec, flops_per_char

ORDER = [
    "probseq",
    "probseq_graph",
    "probseq_xla",
    "probseq_tfthreads",
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
PEERS = ["tf_keras", "tf_keras_xla", "tf_keras_threads", "pytorch", "pytorch_tuned", "eager_loop"]
BF16_ROWS = ["probseq_bf16", "tf_keras_bf16", "pytorch_bf16"]
# The fastest peer "in any precision" (the bf16 targets).
ALL_PEERS = PEERS + ["tf_keras_bf16", "pytorch_bf16"]
# tf_keras with its default threads or with probseq's thread settings, whichever is faster.
KERAS = ["tf_keras", "tf_keras_threads"]


def flops_table(cases: list[str], quick: bool) -> dict:
    """FLOPs per character for each train/eval case (see `common.flops_per_char`)."""
    out = {}
    for case in cases:
        spec = case_spec(case, quick)
        if spec.kind in ("train", "eval"):
            out[case] = flops_per_char(spec)
    return out


def _spread(row: dict) -> str:
    """The medians' spread over rounds, `(max - min) / median`, flagged when above the
    run's target (then no 5% comparison can be made from it)."""
    medians = row.get("round_medians") or []
    if len(medians) < 2:
        return "one round"
    spread = (max(medians) - min(medians)) / sorted(medians)[len(medians) // 2]
    if "spread" in row:
        spread = row["spread"]
    ok = row.get("spread_ok", spread <= 0.05)
    return f"{100 * spread:.1f}%" + ("" if ok else " (too wide)")


def bf16_status(document: dict) -> str | None:
    """None where bf16 is usable here, else why the bf16 rows are "unavailable here":
    no bf16 instructions in the CPU flags, or bf16 matmuls measured no faster than fp32
    (`matmul_peak.py`'s bf16 probes). Measured rows are still shown, labelled."""
    flags = document["machine"].get("cpu_flags", {})
    bf16 = (document.get("matmul") or {}).get("bf16") or {}
    ratio = bf16.get("vs_fp32")
    if not (flags.get("amx_bf16") or flags.get("avx512_bf16")):
        measured = f"; bf16 matmuls measured {ratio:.2f}x fp32" if ratio else ""
        return f"this CPU has neither amx_bf16 nor avx512_bf16 (emulated{measured})"
    if ratio is not None and ratio < 1.0:
        return f"bf16 matmuls measured {ratio:.2f}x fp32 here"
    return None


def _rounds_text(document: dict) -> str:
    """How many rounds the pairs ran (the fixed --rounds, more for the too-spread ones)."""
    counts = [r.get("rounds", 1) for r in document["results"] if r.get("median") is not None]
    settings = document["settings"]
    low, high = (min(counts), max(counts)) if counts else (1, 1)
    if high <= 1 and settings.get("rounds", 1) <= 1:
        return ""
    runs = f"{low} rounds" if low == high else f"{low} to {high} rounds"
    return (
        f" Every pair was run in {runs} (fresh process each, interleaved; pairs whose "
        "medians per round differed by more than the target spread ran again); "
        "median/min/max pool the repeats of all rounds."
    )


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _rows(document: dict, case: str) -> dict[str, dict]:
    return {
        r["implementation"]: r
        for r in document["results"]
        if r["case"] == case and r.get("median") is not None
    }


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b:
        return None
    return a["median"] / b["median"]


def targets(document: dict) -> list[tuple[str, str, float | None, float]]:
    """(case, description, measured, target) for the speed goals of the issue."""
    peak = (document.get("matmul") or {}).get("peak_gflops")
    flops = document.get("flops_per_char", {})
    out = []

    def best(rows, names):
        found = [rows[n] for n in names if n in rows]
        return max(found, key=lambda r: r["median"]) if found else None

    for case in ("train_text8", "train_charrnn"):
        rows = _rows(document, case)
        ps = rows.get("probseq")
        out.append((case, "probseq / faster tf_keras", _ratio(ps, best(rows, KERAS)), 1.25))
        torch_best = best(rows, ["pytorch", "pytorch_tuned"])
        out.append((case, "probseq / faster PyTorch", _ratio(ps, torch_best), 1.05))
        if case == "train_text8" and ps and peak and case in flops:
            fraction = ps["median"] * flops[case]["per_char"] / (peak * 1e9)
            out.append((case, "probseq fraction of matmul rate", fraction, 0.70))
    for case in ("eval_text8", "eval_charrnn"):
        rows = _rows(document, case)
        ps = rows.get("probseq")
        out.append((case, "probseq / fastest peer", _ratio(ps, best(rows, PEERS)), 1.0))
        if case == "eval_text8" and ps and peak and case in flops:
            fraction = ps["median"] * flops[case]["per_char"] / (peak * 1e9)
            out.append((case, "probseq fraction of matmul rate", fraction, 0.85))
    rows = _rows(document, "sample_1x500")
    ps = rows.get("probseq")
    torch_best = best(rows, ["pytorch", "pytorch_tuned"])
    out.append(("sample_1x500", "probseq / faster PyTorch", _ratio(ps, torch_best), 4.0))
    out.append(("sample_1x500", "probseq / eager_loop", _ratio(ps, rows.get("eager_loop")), 30.0))
    rows = _rows(document, "sample_64x64")
    torch_best = best(rows, ["pytorch", "pytorch_tuned"])
    out.append(
        ("sample_64x64", "probseq / faster PyTorch", _ratio(rows.get("probseq"), torch_best), 3.0)
    )
    flags = document.get("machine", {}).get("cpu_flags", {})
    amx = "" if flags.get("amx_bf16") else " (AMX target)"
    for case in ("train_text8", "train_charrnn", "eval_text8", "eval_charrnn", "sample_64x64"):
        rows = _rows(document, case)
        bf = rows.get("probseq_bf16")
        fp32 = rows.get("probseq")
        goal = {"train": 2.0, "eval": 2.0, "sample": 1.5}[case.split("_")[0]]
        out.append((case, f"probseq_bf16 / probseq fp32{amx}", _ratio(bf, fp32), goal))
        if case.startswith("train"):
            fastest = best(rows, ALL_PEERS)
            out.append((case, f"probseq_bf16 / fastest peer, any precision{amx}",
                        _ratio(bf, fastest), 1.5))  # fmt: skip
    cases = {r["case"] for r in document["results"]}
    return [t for t in out if t[0] in cases and (t[2] is not None or "bf16" not in t[1])]


def markdown(document: dict) -> str:
    """The RESULTS.md text."""
    machine = document["machine"]
    settings = document["settings"]
    matmul = document.get("matmul") or {}
    peak = matmul.get("peak_gflops")
    flops = document.get("flops_per_char", {})
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items() if v)
    flags = ", ".join(k for k, v in machine.get("cpu_flags", {}).items() if v) or "-"
    lines = [
        "# probseq speed benchmark results",
        "",
        "Generated by `benchmarks/run.py`; do not edit by hand. Protocol and caveats:",
        "`benchmarks/README.md`.",
        "",
        f"- run: `{settings['command']}` started {settings['started']}, "
        f"{settings['wall_seconds'] / 60:.1f} min"
        + (" — **quick mode (tiny shapes): not a speed result**" if settings["quick"] else ""),
        f"- machine: {machine.get('cpu_model')}, {machine.get('usable_cpus')} usable CPUs, "
        f"{machine.get('memory_gib')} GiB; flags: {flags}",
        f"- load average (1 min) at start / end: {machine['load_avg_at_start'][0]:.2f} / "
        f"{machine.get('load_avg_at_end', [float('nan')])[0]:.2f} (above ~0.5 means other "
        "work shared the cores: numbers are noisy)",
        f"- versions: {versions}",
        f"- protocol: first call timed separately (compile = first call - steady call), "
        f"{settings['warmup_calls']} warm-up calls, {settings['repeats']} timed repeats of "
        f">= {settings['min_repeat_seconds']} s each; median [min .. max] over repeats. "
        + (
            "Peak RSS: one process for all pairs (`--in-process`): cumulative."
            if settings.get("in_process")
            else "Peak RSS = `ru_maxrss` of a fresh process per (case, implementation)."
        )
        + _rounds_text(document),
        "",
        "## Matmul rate (TensorFlow, fp32 and bf16)",
        "",
    ]
    bf16 = (matmul.get("bf16") or {}).get("probes", {})
    if "probes" in matmul:
        lines += ["| probe | shape | fp32 GFLOP/s | bf16 GFLOP/s |", "|---|---|---:|---:|"]
        for name, probe in matmul["probes"].items():
            other = _fmt((bf16.get(name) or {}).get("gflops"), 1)
            lines.append(f"| {name} | {probe['shape']} | {probe['gflops']:.1f} | {other} |")
        lines += ["", f"Peak (best probe): **{peak:.1f} GFLOP/s** in fp32"]
        if bf16:
            lines[-1] += (
                f", **{matmul['bf16']['peak_gflops']:.1f}** in bf16 "
                f"({matmul['bf16']['vs_fp32']:.2f}x)"
            )
        lines[-1] += "."
        status = bf16_status(document)
        lines += [
            "",
            "bf16 here: "
            + (f"**unavailable here**: {status}." if status else "available (measured faster)."),
            "",
        ]
    else:
        lines += [f"not measured ({matmul.get('error', 'skipped')})", ""]
    if flops:
        lines += [
            "FLOPs per character (matmuls only; forward = 2*(sum of the per-layer "
            "input+recurrent kernels + H*V), first-layer input a gather; training = 3 x "
            "forward). The last column counts the one-hot input as a dense matmul too.",
            "",
            "| case | MFLOP/char | chars/s at peak | MFLOP/char (one-hot matmul) |",
            "|---|---:|---:|---:|",
        ]
        for case, f in flops.items():
            at_peak = peak * 1e9 / f["per_char"] if peak else None
            lines.append(
                f"| {case} | {f['per_char'] / 1e6:.3f} | {_fmt(at_peak)} | "
                f"{f['per_char_one_hot_input'] / 1e6:.3f} |"
            )
        lines.append("")
    lines += ["## Results (characters per second; higher is better)", ""]
    for case in dict.fromkeys(r["case"] for r in document["results"]):
        rows = {r["implementation"]: r for r in document["results"] if r["case"] == case}
        good = _rows(document, case)
        ps = good.get("probseq")
        lines += [f"### {case}", ""]
        spec = next(r for r in document["results"] if r["case"] == case and "shapes" in r)
        shapes = spec["shapes"]
        lines.append(
            f"{shapes['layers']}x{shapes['hidden']} LSTM, V={shapes['vocab']}, "
            f"{shapes['steps']} steps, batch {shapes['batch']}."
        )
        lines.append("")
        header = (
            "| implementation | median | min | max | medians per round | spread | compile s "
            "| peak RSS MB | probseq / this (per round) |"
        )
        if case in flops and peak:
            header += " % of matmul rate (bf16 rows: of the bf16 rate) |"
        lines.append(header)
        lines.append(
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if "% of" in header else "")
        )
        for impl in [i for i in ORDER if i in rows] + [i for i in rows if i not in ORDER]:
            r = rows[impl]
            name = impl + (f" (= {r['variant']})" if impl == "probseq" and "variant" in r else "")
            if impl in BF16_ROWS and bf16_status(document):
                name += " (unavailable here: emulated bf16)"
            if r.get("median") is None:
                lines.append(f"| {name} | failed: {r.get('error', '?')} | | | | | | | |")
                continue
            rounds = r.get("round_medians", [r["median"]])
            ratio = "" if impl.startswith("probseq") else _fmt(_ratio(ps, r), 2)
            ps_rounds = (ps or {}).get("round_medians", [])
            if ratio and len(ps_rounds) == len(rounds) > 1:
                per_round = [a / b for a, b in zip(ps_rounds, rounds, strict=True)]
                ratio += " (" + " / ".join(f"{x:.2f}" for x in per_round) + ")"
            line = (
                f"| {name} | {_fmt(r['median'])} | {_fmt(r['min'])} | {_fmt(r['max'])} | "
                f"{' / '.join(_fmt(x) for x in rounds)} | {_spread(r)} | "
                f"{r['compile_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {ratio} |"
            )
            if case in flops and peak:
                rate = peak
                if impl in BF16_ROWS:
                    rate = (matmul.get("bf16") or {}).get("peak_gflops") or peak
                fraction = r["median"] * flops[case]["per_char"] / (rate * 1e9)
                line += f" {100 * fraction:.0f}% |"
            lines.append(line)
        lines.append("")
    goals = targets(document)
    if goals:
        lines += [
            "## Targets",
            "",
            "| case | measure | measured | target | met |",
            "|---|---|---:|---:|---|",
        ]
        for case, what, value, goal in goals:
            met = "-" if value is None else ("yes" if value >= goal else "**no**")
            lines.append(f"| {case} | {what} | {_fmt(value, 2)} | {goal:g} | {met} |")
        lines.append("")
    analysis = Path(__file__).with_name("ANALYSIS.md")
    if analysis.exists():
        # Hand-written: why targets are missed, with the profile (kept next to the numbers).
        lines += [analysis.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    # Re-render RESULTS.md from an existing results.json (e.g. after editing ANALYSIS.md):
    #   python -m benchmarks.report [benchmarks/results.json]
    import json
    import sys

    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    document = json.loads(source.read_text(encoding="utf-8"))
    source.with_name("RESULTS.md").write_text(markdown(document), encoding="utf-8")
