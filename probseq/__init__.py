"""probseq: recurrent sequence models as TensorFlow Probability distributions.

`import probseq` is cheap: it imports neither TensorFlow nor any submodule. The public
names (`probseq.LSTMAutoregressive`, `probseq.load`, ...) and the subpackages
(`probseq.data`, `probseq.distributions`, `probseq.evaluation`, `probseq.inference`,
`probseq.nn`, `probseq.cli`) are imported on first use, like `tfp.vi`, and importing
them never changes TensorFlow's global configuration.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it (imported on first attribute access).
_LAZY_NAMES = {
    "EncoderDecoder": "probseq.distributions",
    "LSTMAutoregressive": "probseq.distributions",
    "RecurrentAutoregressive": "probseq.distributions",
    "SequenceClassifier": "probseq.distributions",
    "RealValuedNetwork": "probseq.nn",
    "beam_search": "probseq.distributions",
    "greedy_decode": "probseq.distributions",
    "LSTMNetwork": "probseq.nn",
    "Seq2SeqNetwork": "probseq.nn",
    "set_cpu_threads": "probseq.nn",
    "TrainedModel": "probseq.trained",
    "load": "probseq.trained",
}
_SUBPACKAGES = (
    "cli",
    "data",
    "distribute",
    "distributions",
    "evaluation",
    "forecasting",
    "inference",
    "machine",
    "nn",
    "seeds",
)

__all__ = sorted([*_LAZY_NAMES, "__version__"])

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from probseq.distributions import (  # noqa: F401
        EncoderDecoder,
        LSTMAutoregressive,
        RecurrentAutoregressive,
        SequenceClassifier,
        beam_search,
        greedy_decode,
    )
    from probseq.nn import (  # noqa: F401
        LSTMNetwork,
        RealValuedNetwork,
        Seq2SeqNetwork,
        set_cpu_threads,
    )
    from probseq.trained import TrainedModel, load  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"probseq.{name}")
    raise AttributeError(f"module 'probseq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_NAMES, *_SUBPACKAGES])
