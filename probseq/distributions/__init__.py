"""TensorFlow Probability distributions built on `probseq.nn`."""

from probseq.distributions.lstm_autoregressive import LSTMAutoregressive

__all__ = ["LSTMAutoregressive"]
