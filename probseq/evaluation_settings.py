"""Settings of dynamic evaluation, importable without TensorFlow (the command line's
defaults); `probseq.evaluation.DynamicSettings` is this class."""

from __future__ import annotations

import argparse
import dataclasses

from probseq.checks import check_positive_int

__all__ = ["DynamicSettings", "add_dynamic_arguments", "dynamic_settings_from"]


@dataclasses.dataclass(frozen=True)
class DynamicSettings:
    """Settings of dynamic evaluation (`probseq.evaluation.dynamic_evaluate`).

    Attributes:
      segment_length: characters scored between two weight updates.
      learning_rate: SGD step on the segment's mean NLL per character (nats).
      decay: pull towards the trained weights per update (0: none).
      num_streams: contiguous streams read in parallel (each update then learns from
        one segment of every stream); 1 reads the text as one sequence.
      method: `"sgd"` or `"rms"` (Krause et al.'s RMS-scaled steps with the global prior;
        needs training text to measure the gradients' mean square on).
      rms_segments: `"rms"`: training segments the mean square is measured over.
    """

    # Chosen on the validation split (experiments/dynamic_tuning.py, RESULTS.md).
    segment_length: int = 50
    learning_rate: float = 3e-4
    decay: float = 0.001
    num_streams: int = 1
    method: str = "rms"
    rms_segments: int = 200

    def __post_init__(self):
        check_positive_int("segment_length", self.segment_length)
        check_positive_int("num_streams", self.num_streams)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate >= 0):
            raise ValueError(f"learning_rate must be a number >= 0, got {self.learning_rate!r}.")
        if self.method not in ("sgd", "rms"):
            raise ValueError(f"method must be 'sgd' or 'rms', got {self.method!r}.")
        check_positive_int("rms_segments", self.rms_segments)
        if not (isinstance(self.decay, (int, float)) and 0 <= self.decay <= 1):
            raise ValueError(f"decay must be in [0, 1], got {self.decay!r}.")


def add_dynamic_arguments(parser: argparse.ArgumentParser, *, int_type=int) -> None:
    """The `--dynamic-*` flags (defaults: `DynamicSettings`'s) of `probseq evaluate` and
    the experiment scripts; `int_type` parses the counts (e.g. one that refuses 0)."""
    defaults = DynamicSettings()
    parser.add_argument(
        "--dynamic-lr",
        type=float,
        default=defaults.learning_rate,
        help=f"dynamic: step size (default {defaults.learning_rate}, for the rms method)",
    )
    parser.add_argument(
        "--dynamic-decay",
        type=float,
        default=defaults.decay,
        help=f"dynamic: pull towards the trained weights per step (default {defaults.decay})",
    )
    parser.add_argument(
        "--dynamic-segment",
        type=int_type,
        default=defaults.segment_length,
        help=f"dynamic: chars scored between updates (default {defaults.segment_length})",
    )
    parser.add_argument(
        "--dynamic-streams",
        type=int_type,
        default=defaults.num_streams,
        help=f"dynamic: contiguous streams read in parallel (default {defaults.num_streams})",
    )
    parser.add_argument(
        "--dynamic-method",
        choices=("sgd", "rms"),
        default=defaults.method,
        help="dynamic: plain SGD steps, or rms (steps scaled by the gradients' RMS measured "
        f"on the end of the training split, Krause et al.; default {defaults.method})",
    )


def dynamic_settings_from(args: argparse.Namespace) -> DynamicSettings:
    """The `DynamicSettings` of parsed `add_dynamic_arguments` flags."""
    return DynamicSettings(
        segment_length=args.dynamic_segment,
        learning_rate=args.dynamic_lr,
        decay=args.dynamic_decay,
        num_streams=args.dynamic_streams,
        method=args.dynamic_method,
    )
