"""Settings of dynamic evaluation, importable without TensorFlow (the command line's
defaults); `probseq.evaluation.DynamicSettings` is this class."""

from __future__ import annotations

import dataclasses

from probseq.checks import check_positive_int

__all__ = ["DynamicSettings"]


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
