"""Typed training configuration: every default in one place, overridable by file and flags."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from probseq.files import atomic_write_text

__all__ = [
    "ARCHITECTURE_FIELDS",
    "ConfigError",
    "TrainConfig",
    "field_choices",
    "field_help",
    "parse_flag",
    "load_config_file",
    "resolve_config",
]


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


def _field(default, help_text: str, choices: tuple[str, ...] | None = None):
    """A `TrainConfig` field with its command-line help (the `probseq train` flag
    `--name-with-dashes` is derived from the field: name, type, default, this text, and
    the allowed values when there is a fixed set)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """All settings of a training run (defaults: the Shakespeare char-rnn tutorial model).

    Model: `hidden_size`, `num_layers`, `cell` (lstm, lnlstm, gru or rnn). Data: `corpus`,
    `num_steps` (window length), `sequences` ("windows"; "streams": truncated BPTT over
    `batch_size` contiguous streams, the state carried across batches; or "lines": one
    sequence per line ending with the newline, at most `max_line_length` characters),
    `batch_size`. Regularization: `dropout` (locked, on every layer's outputs),
    `weight_decay` (decoupled, AdamW), `cell="lnlstm"` (layer-normalized LSTM).
    Optimizer: Adam with `learning_rate`, a linear warm-up of `warmup_steps` then cosine
    decay to `min_learning_rate_fraction * learning_rate` at `max_steps`; `clip_norm` on
    the global gradient norm. Objective: `method="map"` with a Gaussian prior of scale
    `prior_scale` (None: maximum likelihood), or `method="variational"`. Budget: stop at
    `max_steps` or after `budget_minutes`, whichever comes first. Bookkeeping: checkpoint
    every `checkpoint_every` steps, validate on the first `eval_chars` validation
    characters every `eval_every` steps.
    """

    corpus: str = _field(
        "shakespeare",
        "corpus name (shakespeare, tiny-shakespeare, text8) or a text file/dir",
    )
    cache_dir: str | None = _field(None, "where corpora are downloaded and cached")
    hidden_size: int = _field(256, "recurrent units per layer")
    num_layers: int = _field(2, "stacked recurrent layers")
    cell: str = _field(
        "lstm",
        "recurrent cell: lstm, lnlstm (layer-normalized LSTM), gru or rnn (basic tanh RNN)",
        ("lstm", "lnlstm", "gru", "rnn"),
    )
    num_steps: int = _field(50, "training window length in characters (sequences=windows)")
    sequences: str = _field(
        "windows",
        "windows (random fixed-length windows, each from a zero state), streams (the text "
        "cut into batch_size contiguous streams read num_steps characters per batch, the "
        "state carried from batch to batch: truncated backpropagation through time) or "
        "lines (one sequence per line, ended by the newline)",
        ("windows", "streams", "lines"),
    )
    max_line_length: int = _field(200, "sequences=lines: characters per line at most (longer: cut)")
    state_reset: float = _field(
        0.0,
        "sequences=streams: probability that a stream's carried state is reset to zero "
        "before a batch (so the model also learns to start from nothing)",
    )
    batch_size: int = _field(128, "windows per batch")
    learning_rate: float = _field(2e-3, "peak Adam learning rate")
    min_learning_rate_fraction: float = _field(0.05, "final LR as a fraction of the peak (cosine)")
    warmup_steps: int = _field(100, "linear warm-up steps")
    lr_schedule: str = _field("cosine", "cosine or constant", ("cosine", "constant"))
    clip_norm: float | None = _field(5.0, "global gradient-norm clip (number or 'none')")
    dropout: float = _field(
        0.0,
        "locked dropout rate on every layer's outputs (between layers and before the "
        "output head; one mask per sequence, shared over its steps); 0: off",
    )
    weight_decay: float = _field(
        0.0, "decoupled weight decay of Adam (AdamW: w -= lr * weight_decay * w); 0: off"
    )
    method: str = _field(
        "map", "map (point estimate) or variational (Bayes by backprop)", ("map", "variational")
    )
    prior_scale: float | None = _field(
        1.0, "Gaussian prior scale on weights (number or 'none' = max. likelihood)"
    )
    # Variational inference (method="variational").
    # 1e-2: measured by experiments/vi_defaults.py (experiments/RESULTS.md): 1e-3 stays
    # practically MAP (a short fit cannot grow the scales much), 1e-2 beats MAP by 1500 steps.
    posterior_init_scale: float = _field(1e-2, "variational: initial posterior std")
    num_draws_per_step: int = _field(1, "variational: weight draws per training step")
    kl_annealing_steps: int = _field(0, "variational: steps to anneal the KL weight from 0 to 1")
    eval_draws: int = _field(16, "variational: posterior draws for evaluation")
    seed: int = _field(0, "seed for initialization, data order and samples")
    max_steps: int = _field(2400, "total optimizer steps of the run")
    budget_minutes: float | None = _field(
        10.0, "stop this invocation after this many minutes ('none': no limit)"
    )
    checkpoint_every: int = _field(200, "checkpoint period in steps")
    eval_every: int = _field(200, "validation period in steps")
    eval_chars: int = _field(100_000, "validation characters used for periodic validation")
    sample_length: int = _field(200, "length of samples drawn at each validation")
    prime: str = _field("The ", "priming text of the samples")
    jit_compile: bool = _field(False, "compile the train step with XLA (true/false)")
    precision: str = _field(
        "fp32",
        "matmul precision of training: fp32, bf16 (bfloat16 matmuls with fp32 gates, "
        "states, loss and weights) or auto (bf16 where the CPU has bf16 instructions and a "
        "quick probe measures bf16 matmuls faster; the run records the choice)",
        ("auto", "fp32", "bf16"),
    )

    def __post_init__(self):
        _check(self.hidden_size >= 1, "hidden_size must be >= 1")
        _check(self.num_layers >= 1, "num_layers must be >= 1")
        _check(
            self.cell in ("lstm", "lnlstm", "gru", "rnn"),
            "cell must be 'lstm', 'lnlstm', 'gru' or 'rnn'",
        )
        _check(self.num_steps >= 2, "num_steps must be >= 2")
        _check(
            self.sequences in ("windows", "streams", "lines"),
            "sequences must be 'windows', 'streams' or 'lines'",
        )
        _check(0 <= self.dropout < 1, "dropout must be in [0, 1)")
        _check(0 <= self.state_reset <= 1, "state_reset must be in [0, 1]")
        _check(
            self.state_reset == 0 or self.sequences == "streams",
            "state_reset applies to sequences='streams'",
        )
        _check(self.precision in ("auto", "fp32", "bf16"), "precision: auto, fp32 or bf16")
        _check(
            self.precision == "fp32" or (self.method == "map" and self.sequences != "lines"),
            "precision='bf16' / 'auto' applies to method='map' with sequences='windows' or "
            "'streams'",
        )
        _check(self.weight_decay >= 0, "weight_decay must be >= 0")
        _check(
            self.method == "map" or (self.sequences != "streams" and self.dropout == 0),
            "sequences='streams' and dropout train a point estimate: use method='map'",
        )
        _check(
            self.sequences != "lines" or self.dropout == 0,
            "dropout applies to sequences='windows' or 'streams', not 'lines'",
        )
        _check(self.max_line_length >= 1, "max_line_length must be >= 1")
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(self.learning_rate > 0, "learning_rate must be > 0")
        _check(0 <= self.min_learning_rate_fraction <= 1, "min_learning_rate_fraction in [0, 1]")
        _check(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        _check(self.lr_schedule in ("cosine", "constant"), "lr_schedule: cosine or constant")
        _check(self.clip_norm is None or self.clip_norm > 0, "clip_norm must be > 0 or None")
        _check(self.method in ("map", "variational"), "method must be 'map' or 'variational'")
        _check(self.prior_scale is None or self.prior_scale > 0, "prior_scale must be > 0")
        _check(
            self.method != "variational" or self.prior_scale is not None,
            "method='variational' needs a prior: set prior_scale to a number",
        )
        _check(self.posterior_init_scale > 0, "posterior_init_scale must be > 0")
        _check(self.num_draws_per_step >= 1, "num_draws_per_step must be >= 1")
        _check(self.kl_annealing_steps >= 0, "kl_annealing_steps must be >= 0")
        _check(self.eval_draws >= 1, "eval_draws must be >= 1")
        _check(self.max_steps >= 1, "max_steps must be >= 1")
        _check(self.budget_minutes is None or self.budget_minutes > 0, "budget_minutes must be > 0")
        _check(self.checkpoint_every >= 1, "checkpoint_every must be >= 1")
        _check(self.eval_every >= 1, "eval_every must be >= 1")
        _check(self.eval_chars >= 1, "eval_chars must be >= 1")
        _check(self.sample_length >= 1, "sample_length must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))


# Fields that define the model and its data stream: a resumed run must not change them.
ARCHITECTURE_FIELDS = (
    "corpus",
    "hidden_size",
    "num_layers",
    "cell",
    "num_steps",
    "sequences",
    "max_line_length",
    "batch_size",
    "method",
    "seed",
)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each field's type, evaluated (`int`, `float | None`, ...)."""
    return typing.get_type_hints(TrainConfig)


def field_help() -> dict[str, str]:
    """Each field's command-line help text."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(TrainConfig)}


def field_choices() -> dict[str, tuple[str, ...] | None]:
    """Each field's allowed values (None: any value of its type)."""
    return {f.name: f.metadata["choices"] for f in dataclasses.fields(TrainConfig)}


def _base_type(kind) -> tuple[type, bool]:
    """`(base type, optional)` of a field type such as `float | None`."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if args:
        return args[0], len(args) < len(typing.get_args(kind))
    return kind, False


def _coerce(name: str, value: Any) -> Any:
    """Coerce a JSON or string value to the field's type, with a clear error."""
    base, optional = _base_type(_field_types()[name])
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name} cannot be None")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be of type {base.__name__}, got {value!r}") from None


def parse_flag(name: str) -> Callable[[str], Any]:
    """An argparse `type=` for the field `name`: the same coercion as config files, so a
    flag and a file accept the same values ('none' for optional fields)."""

    def parse(text: str) -> Any:
        try:
            return _coerce(name, text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = _base_type(_field_types()[name])[0].__name__  # argparse's error wording
    return parse


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON config file (a subset of `TrainConfig` fields) with clear errors."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of settings")
    unknown = sorted(set(raw) - set(_field_types()))
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown settings {unknown}; known: {sorted(_field_types())}"
        )
    return raw


def resolve_config(
    file_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults, then a config file's values, then explicit overrides (flags)."""
    values: dict[str, Any] = {}
    for source in (file_values or {}, overrides or {}):
        for name, value in source.items():
            if name not in _field_types():
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = _coerce(name, value)
    return TrainConfig(**values)
