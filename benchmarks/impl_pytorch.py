"""PyTorch peers for `benchmarks/run.py` (not run on its own): `pytorch`, `pytorch_tuned`.

Model: one-hot input (`F.one_hot(...).float()`), `nn.LSTM(V, H, L)` (time-major), then
`nn.Linear(H, V)`; the same shapes as probseq's network (PyTorch's LSTM has two bias
vectors, an irrelevant difference for speed).

* `pytorch`: what a user writes with default settings: `torch.optim.Adam`,
  `clip_grad_norm_`, `torch.no_grad()` for eval and sampling, sampling calls the
  `nn.LSTM` module once per character from a Python loop with `torch.multinomial`.
* `pytorch_tuned`: the best settings found on this machine for each case (`TUNED`
  below; measured with `benchmarks/tune_pytorch.py`) among: thread count, oneDNN
  (mkldnn) on/off for the RNN kernels, `torch.inference_mode`, fused Adam,
  `torch.compile`, and for sampling a TorchScript-compiled (`torch.jit.script`) loop
  over time that calls the same `nn.LSTM`/`nn.Linear` modules.
"""

from __future__ import annotations

from benchmarks.common import CaseSpec, Timer, drive, random_batches

VARIANTS = {"pytorch": "default", "pytorch_tuned": "tuned", "pytorch_bf16": "bf16"}

DEFAULT = {"threads": None, "mkldnn": None, "inference_mode": False, "fused_adam": False}
# Best settings per case, chosen with benchmarks/tune_pytorch.py on this (shared, 2-core)
# machine; medians in chars/s over 3-4 interleaved rounds, measured 2026-11-22:
#   train_text8    threads=1 16.4k | default (2 threads, oneDNN) 15.1k | mkldnn off 3.0k
#   train_charrnn  threads=1 20.4k | default 1.6k | mkldnn off 8.1k | fused Adam 4.1k
#   eval_text8     inference_mode (2 threads, oneDNN) 117.9k | no_grad 111.8k |
#                  threads=1 63.3k | mkldnn off 77.7k
#   eval_charrnn   inference_mode + threads=1 34.8k | inference_mode 9.2k | no_grad 5.3k
#   sample_1x500   script + mkldnn off + threads=1 1.3k | mkldnn off + threads=1 0.9k |
#                  default 0.03k (oneDNN RNN primitive set-up on every 1-step call)
#   sample_64x64   mkldnn off + threads=1 29.1k | + script 28.6k | default 1.7k
# Two threads lose badly whenever another process competes for the cores (OpenMP
# barriers); one thread was the better choice for every case but eval_text8 then.
# With the cores free (load < 1) two threads win instead, e.g. train_charrnn default
# 35.0k vs threads=1 20.0k, eval_charrnn 147k vs 81k; torch.compile added <= 2% there.
# So the thread count is chosen at run time ("auto": `choose_threads`).
TUNED = {
    "train_text8": {"threads": "auto"},
    "train_charrnn": {"threads": "auto"},
    "eval_text8": {"inference_mode": True, "threads": "auto"},
    "eval_charrnn": {"inference_mode": True, "threads": "auto"},
    "sample_1x500": {"inference_mode": True, "mkldnn": False, "script": True, "threads": "auto"},
    "sample_64x64": {"inference_mode": True, "mkldnn": False, "threads": "auto"},
}


def _model(spec: CaseSpec):
    import torch
    from torch import nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.vocab = spec.vocab
            self.lstm = nn.LSTM(spec.vocab, spec.hidden, spec.layers)
            self.out = nn.Linear(spec.hidden, spec.vocab)

        def forward(self, tokens, state: tuple[torch.Tensor, torch.Tensor] | None = None):
            x = nn.functional.one_hot(tokens, self.vocab).float()  # :: [T, B, V]
            y, state = self.lstm(x, state)
            return self.out(y), state

    torch.manual_seed(1)
    return CharLSTM()


def apply_settings(settings: dict, defaults: dict | None = None) -> None:
    """Thread count and oneDNN switch (process-wide); unset keys -> `defaults` if given."""
    import torch

    defaults = defaults or {}
    threads = settings.get("threads") or defaults.get("threads")
    if threads:
        torch.set_num_threads(threads)
    mkldnn = settings.get("mkldnn")
    mkldnn = defaults.get("mkldnn") if mkldnn is None else mkldnn
    if mkldnn is not None:
        torch.backends.mkldnn.enabled = mkldnn


def train_call(spec: CaseSpec, settings: dict):
    """A `call()` doing one training step (Adam, optional global-norm clipping)."""
    import torch

    model = _model(spec)
    kwargs = {"fused": True} if settings.get("fused_adam") else {}
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate, **kwargs)
    if settings.get("compile"):
        model = torch.compile(model)
    data = torch.from_numpy(random_batches(spec)).long().transpose(1, 2)  # [N, T+1, B]
    data = data.contiguous()
    state = {"i": 0}

    def call():
        batch = data[state["i"] % len(data)]
        state["i"] += 1
        optimizer.zero_grad(set_to_none=True)
        with _autocast(settings):
            logits, _ = model(batch[:-1])
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, spec.vocab), batch[1:].reshape(-1)
        )
        loss.backward()
        if spec.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip_norm)
        optimizer.step()
        return loss.item()

    return call


def eval_call(spec: CaseSpec, settings: dict):
    """A `call()` scoring one batch of windows (summed log-likelihood)."""
    import torch

    model = _model(spec).eval()
    if settings.get("compile"):
        model = torch.compile(model)
    data = torch.from_numpy(random_batches(spec)).long().transpose(1, 2).contiguous()
    state = {"i": 0}
    context = torch.inference_mode if settings.get("inference_mode") else torch.no_grad

    def call():
        batch = data[state["i"] % len(data)]
        state["i"] += 1
        with context(), _autocast(settings):
            logits, _ = model(batch[:-1])
            nll = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, spec.vocab), batch[1:].reshape(-1), reduction="sum"
            )
        return -nll.item()

    return call


def sample_call(spec: CaseSpec, settings: dict):
    """A `call()` generating `[B, T]` tokens, one module call per character."""
    import torch

    model = _model(spec).eval()
    context = torch.inference_mode if settings.get("inference_mode") else torch.no_grad
    batch, steps, hidden, layers = spec.batch, spec.steps, spec.hidden, spec.layers

    looper = _Looper(model, steps)
    if settings.get("script"):
        looper = torch.jit.script(looper)

    def call():
        with context(), _autocast(settings):
            token = torch.zeros(1, batch, dtype=torch.long)
            h = torch.zeros(layers, batch, hidden)
            c = torch.zeros(layers, batch, hidden)
            return looper(token, h, c).t().numpy()

    return call


def _Looper(model, steps: int):
    """The sampling loop as an `nn.Module` so that `torch.jit.script` compiles it."""
    import torch

    class Looper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.steps = steps

        def forward(self, token: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
            out = []
            state = (h, c)
            for _ in range(self.steps):
                logits, state = self.model(token, state)
                probs = torch.softmax(logits[0], dim=-1)
                token = torch.multinomial(probs, 1).t()
                out.append(token)
            return torch.cat(out, dim=0)

    return Looper()


CALLS = {"train": train_call, "eval": eval_call, "sample": sample_call}


def settings_for(impl: str, case: str) -> dict:
    if VARIANTS[impl] == "bf16":  # the tuned settings under CPU bf16 autocast
        return dict(TUNED[case], autocast=True)
    return dict(DEFAULT) if VARIANTS[impl] == "default" else dict(TUNED[case])


def _autocast(settings: dict):
    """`torch.autocast("cpu", bfloat16)` when the settings ask for it, else a no-op."""
    import contextlib

    import torch

    if settings.get("autocast"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def choose_threads(spec: CaseSpec, settings: dict, seconds: float) -> tuple[dict, dict]:
    """Time `settings` with 1 and with 2 threads (interleaved, 2 rounds of `seconds`) and
    return the faster settings and the best chars/s seen with each.

    The better thread count depends on whether other processes compete for the cores
    (OpenMP barriers suffer badly then), so `pytorch_tuned` decides at run time.
    """
    import time

    options = {n: dict(settings, threads=n) for n in (1, 2)}
    calls = {}
    for n, option in options.items():
        apply_settings(option)
        calls[n] = CALLS[spec.kind](spec, option)
        calls[n]()  # build / first call
    rates = {n: [] for n in options}
    for _ in range(2):
        for n, option in options.items():
            apply_settings(option)
            count, start = 0, time.perf_counter()
            while count < 2 or time.perf_counter() - start < seconds:
                calls[n]()
                count += 1
            rates[n].append(count * spec.chars_per_call / (time.perf_counter() - start))
    best = max(options, key=lambda n: max(rates[n]))
    return options[best], {f"threads={n}": max(r) for n, r in rates.items()}


def run(impl: str, spec: CaseSpec, timer: Timer, settings: dict | None = None) -> dict:
    """Benchmark variant `impl` on `spec` (optionally with explicit `settings`)."""
    import torch

    settings = settings or settings_for(impl, spec.name)
    trial = None
    if settings.get("threads") == "auto":
        settings, trial = choose_threads(spec, settings, min(1.0, timer.min_repeat_seconds))
    apply_settings(settings)
    result = drive(CALLS[spec.kind](spec, settings), timer)
    if trial:
        result["thread_trial_chars_per_s"] = trial
    shown = {k: v for k, v in settings.items() if v not in (None, False)}
    result["notes"] = (
        f"threads={torch.get_num_threads()}, mkldnn={torch.backends.mkldnn.enabled}, {shown}"
    )
    return result
