"""Network math with no probability in it: LSTM / GRU / RNN cells, stacks and variables."""

from probseq.nn.cells import (
    CELL_NAMES,
    Cell,
    HiddenState,
    cell_encode,
    cell_hidden,
    cell_initial_state,
    cell_layer,
    cell_logits,
    cell_start,
    cell_step,
    get_cell,
    init_cell_params,
)
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
from probseq.nn.network import LSTMNetwork, Seq2SeqNetwork, init_lstm_params
from probseq.nn.threads import parallel_chains, set_cpu_threads, usable_cpus

__all__ = [
    "CELL_NAMES",
    "Cell",
    "HiddenState",
    "LSTMNetwork",
    "LSTMState",
    "Seq2SeqNetwork",
    "cell_encode",
    "cell_hidden",
    "cell_initial_state",
    "cell_layer",
    "cell_logits",
    "cell_start",
    "cell_step",
    "gate_step",
    "get_cell",
    "init_cell_params",
    "init_lstm_params",
    "initial_state",
    "lstm_logits",
    "lstm_start",
    "lstm_step",
    "num_layers_of",
    "param_batch_ndims",
    "parallel_chains",
    "set_cpu_threads",
    "sizes_of",
    "usable_cpus",
]
