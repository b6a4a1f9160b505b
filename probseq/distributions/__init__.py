"""TensorFlow Probability distributions built on `probseq.nn`."""

from probseq.distributions import heads
from probseq.distributions.classifier import SequenceClassifier
from probseq.distributions.decoding import beam_search, greedy_decode
from probseq.distributions.deepar import DeepAR
from probseq.distributions.lstm_autoregressive import LSTMAutoregressive
from probseq.distributions.recurrent_autoregressive import RecurrentAutoregressive
from probseq.distributions.seq2seq import DecoderStart, EncoderDecoder

__all__ = [
    "DecoderStart",
    "DeepAR",
    "EncoderDecoder",
    "LSTMAutoregressive",
    "RecurrentAutoregressive",
    "SequenceClassifier",
    "beam_search",
    "greedy_decode",
    "heads",
]
