"""probseq: LSTM sequence models as TensorFlow Probability distributions."""

from probseq.distributions import LSTMAutoregressive
from probseq.nn import LSTMNetwork

__version__ = "0.1.0"
__all__ = ["LSTMAutoregressive", "LSTMNetwork", "__version__"]
