"""Network math with no probability in it: the LSTM cell, stack and its variables."""

from probseq.nn.lstm import (
    LSTMState,
    gate_step,
    initial_state,
    lstm_logits,
    lstm_start,
    lstm_step,
    num_layers_of,
    param_batch_ndims,
    sizes_of,
)
from probseq.nn.network import LSTMNetwork, init_lstm_params

__all__ = [
    "LSTMNetwork",
    "LSTMState",
    "gate_step",
    "init_lstm_params",
    "initial_state",
    "lstm_logits",
    "lstm_start",
    "lstm_step",
    "num_layers_of",
    "param_batch_ndims",
    "sizes_of",
]
