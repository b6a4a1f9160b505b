"""probseq: LSTM sequence models as TensorFlow Probability distributions."""

from probseq.distributions import EncoderDecoder, LSTMAutoregressive, beam_search, greedy_decode
from probseq.nn import LSTMNetwork, Seq2SeqNetwork, set_cpu_threads

__version__ = "0.1.0"
__all__ = [
    "EncoderDecoder",
    "LSTMAutoregressive",
    "LSTMNetwork",
    "Seq2SeqNetwork",
    "__version__",
    "beam_search",
    "greedy_decode",
    "set_cpu_threads",
]
