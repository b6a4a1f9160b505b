"""Typed training configuration: every default in one place, overridable by file and flags."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHITECTURE_FIELDS",
    "ConfigError",
    "TrainConfig",
    "load_config_file",
    "resolve_config",
]


class ConfigError(ValueError):
    """A configuration file or value is invalid."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """All settings of a training run (defaults: the Shakespeare char-rnn tutorial model).

    Model: `hidden_size`, `num_layers`, `cell` (lstm, gru or rnn). Data: `corpus`,
    `num_steps` (window length), `sequences` ("windows", or "lines": one sequence per
    line ending with the newline, at most `max_line_length` characters),
    `batch_size`. Optimizer: Adam with `learning_rate`, a linear warm-up of
    `warmup_steps` then cosine decay to `min_learning_rate_fraction * learning_rate`
    at `max_steps`; `clip_norm` on the global gradient norm. Objective: `method="map"`
    with a Gaussian prior of scale `prior_scale` (None: maximum likelihood), or
    `method="variational"`. Budget: stop at `max_steps` or after `budget_minutes`,
    whichever comes first. Bookkeeping: checkpoint every `checkpoint_every` steps,
    validate on the first `eval_chars` validation characters every `eval_every` steps.
    """

    corpus: str = "shakespeare"
    cache_dir: str | None = None
    hidden_size: int = 256
    num_layers: int = 2
    cell: str = "lstm"
    num_steps: int = 50
    sequences: str = "windows"
    max_line_length: int = 200
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_learning_rate_fraction: float = 0.05
    warmup_steps: int = 100
    lr_schedule: str = "cosine"
    clip_norm: float | None = 5.0
    method: str = "map"
    prior_scale: float | None = 1.0
    # Variational inference (method="variational").
    # 1e-2: measured by experiments/vi_defaults.py (experiments/RESULTS.md): 1e-3 stays
    # practically MAP (a short fit cannot grow the scales much), 1e-2 beats MAP by 1500 steps.
    posterior_init_scale: float = 1e-2
    num_draws_per_step: int = 1
    kl_annealing_steps: int = 0
    eval_draws: int = 16
    seed: int = 0
    max_steps: int = 2400
    budget_minutes: float | None = 10.0
    checkpoint_every: int = 200
    eval_every: int = 200
    eval_chars: int = 100_000
    sample_length: int = 200
    prime: str = "The "
    jit_compile: bool = False

    def __post_init__(self):
        _check(self.hidden_size >= 1, "hidden_size must be >= 1")
        _check(self.num_layers >= 1, "num_layers must be >= 1")
        _check(self.cell in ("lstm", "gru", "rnn"), "cell must be 'lstm', 'gru' or 'rnn'")
        _check(self.num_steps >= 2, "num_steps must be >= 2")
        _check(self.sequences in ("windows", "lines"), "sequences must be 'windows' or 'lines'")
        _check(self.max_line_length >= 1, "max_line_length must be >= 1")
        _check(
            self.sequences == "windows" or self.method == "map",
            "sequences='lines' trains by MAP for now (method='map'); variational fits of "
            "line models are not built yet",
        )
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
        _atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True))


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


def _field_types() -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Coerce a JSON or string value to the field's type, with a clear error."""
    kind = _field_types()[name]
    optional = "None" in kind
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name} cannot be None")
    base = kind.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be of type {base}, got {value!r}") from None


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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
