"""TensorFlow Probability distributions built on `probseq.nn`."""

from probseq.distributions.decoding import beam_search, greedy_decode
from probseq.distributions.lstm_autoregressive import LSTMAutoregressive
from probseq.distributions.seq2seq import DecoderStart, EncoderDecoder

__all__ = ["DecoderStart", "EncoderDecoder", "LSTMAutoregressive", "beam_search", "greedy_decode"]
