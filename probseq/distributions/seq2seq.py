"""`EncoderDecoder`: a distribution over target sequences conditioned on a source sequence."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

# is_ref / convert_nonref_to_tensor have no public names in TFP 0.25.
from tensorflow_probability.python.internal import tensor_util

# The sentinel has no public name in TFP 0.25.
from tensorflow_probability.python.internal.parameter_properties import BIJECTOR_NOT_IMPLEMENTED

from probseq.distributions._sequence import (
    DecoderStart,
    _TokenSequenceDistribution,
    check_num_steps,
    check_params,
    convert_tokens,
    range_assertions,
    sample_tokens,
)
from probseq.nn.cells import cell_encode, cell_initial_state, cell_step, network_cell
from probseq.seeds import stateless_seed

tfd = tfp.distributions

__all__ = ["DecoderStart", "EncoderDecoder"]


class EncoderDecoder(_TokenSequenceDistribution):
    """Distribution over `target_steps` tokens given a source sequence (encoder-decoder).

    `p(y_1..y_T | x) = prod_t Categorical(y_t | logits_t / temperature)`, where an encoder
    reads the source `x` and a decoder, started from the encoder's final state, reads
    `y_1..y_{t-1}`.

    #### Mathematical details

    The encoder (its own embedding and weights) starts from the zero state and reads the
    `S` source tokens; its final state (layer by layer) is the decoder's initial state.
    The decoder's first step reads *no* token (a zero input term, as in
    `LSTMAutoregressive`), then `y_1, ..., y_{T-1}`; the logits after each step give the
    next target token:

    ```none
    h_0 = encoder(x_1..x_S)
    log p(y | x) = sum_{t=1}^{T} log softmax(logits_t(h_0, y_<t) / temperature)[y_t]
    ```

    Shapes: event shape `[target_steps]`; batch shape is the broadcast of the source's
    leading dims `source.shape[:-1]`, of the leading dims of `params` and of
    `temperature`. `sample(s)` has shape `s + batch_shape + [T]`; `log_prob(y)` has
    shape `y.shape[:-1]` broadcast against `batch_shape`. `log_prob` is one teacher-forced
    pass; `sample` is one `tf.while_loop` over target steps with stateless seeds (Gumbel-
    max), so the same seed gives the same samples in eager mode and in `tf.function`.

    Args:
      network: a `probseq.nn.Seq2SeqNetwork` (sizes, cell and, when `params` is None, the
        variables).
      source: int tokens `[..., S]`, `S >= 1`, in `[0, source_vocab_size)`; its leading
        dims are batch dims.
      target_steps: Python int `T >= 1`, the target length.
      temperature: optional positive float (scalar or batched; Tensor or Variable).
      params: optional structure like `network.params` with optional leading batch dims
        (e.g. posterior draws), used instead of the network's variables.
      eos, lengths: variable-length targets, as in `LSTMAutoregressive` (an end token;
        per-example target lengths; ragged target values).
      validate_args: check target and source tokens (range, integer values, length) and
        the temperature at run time.
      allow_nan_stats: TFP convention; unused by the methods implemented here.
      name: name scope.

    #### Examples

    ```python
    net = probseq.nn.Seq2SeqNetwork(10, 10, hidden_size=16, seed=1)
    dist = probseq.distributions.EncoderDecoder(net, source=[[1, 2, 3], [4, 5, 6]],
                                                target_steps=2)
    dist.batch_shape                 # ==> [2]
    y = dist.sample(5, seed=(1, 2))  # ==> int32 [5, 2, 2]
    dist.log_prob(y)                 # ==> float32 [5, 2]
    ```

    #### References

    [1] Sutskever, Vinyals, Le. Sequence to Sequence Learning with Neural Networks.
        NeurIPS 2014. https://arxiv.org/abs/1409.3215
    """

    _TOKENS = "target tokens"
    _SEQUENCES = "target sequences"
    _LENGTH_NAME = "target_steps"

    def __init__(
        self,
        network,
        source,
        target_steps: int,
        *,
        temperature=None,
        params=None,
        eos: int | None = None,
        lengths=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "EncoderDecoder",
    ):
        parameters = dict(locals())
        target_steps = check_num_steps(target_steps, "target_steps")
        with tf.name_scope(name) as name:
            self._network = network
            self._num_steps = target_steps
            self._params = (
                None if params is None else check_params(network, params, name_leaves=False)
            )
            self._source = convert_tokens(source, "source", "S", " (S >= 1).")
            self._temperature = tensor_util.convert_nonref_to_tensor(
                temperature, dtype=network.dtype, name="temperature"
            )
            self._init_lengths(eos, lengths)
            self._init_distribution(parameters, validate_args, allow_nan_stats, name)

    # ----------------------------------------------------------------- properties
    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            source=tfp.util.ParameterProperties(
                event_ndims=1,
                default_constraining_bijector_fn=BIJECTOR_NOT_IMPLEMENTED,
            ),
            **cls._shared_parameter_properties(dtype),
        )

    @property
    def source(self) -> tf.Tensor:
        """Source tokens `[..., S]` (int32)."""
        return self._source

    @property
    def target_steps(self) -> int:
        """Target length `T` (the event size)."""
        return self._num_steps

    @property
    def num_steps(self) -> int:
        """Alias of `target_steps` (the name `LSTMAutoregressive` uses)."""
        return self._num_steps

    @property
    def vocab_size(self) -> int:
        """Number of target symbols `V`."""
        return self._network.target_vocab_size

    # ------------------------------------------------------------------ internals
    @property
    def _cell(self):
        return network_cell(self._network)

    def _decoder_params(self, params: dict) -> dict:
        return params["decoder"]

    def _context(self):
        return self._source

    def _context_assertions(self) -> list:
        return range_assertions(
            self._source, self._network.source_vocab_size, f"{self.name}: source tokens"
        )

    def _start(self, params: dict, batch_shape):
        """Encode the source, take the decoder's first step (no token).

        Returns logits `batch + [V]` (temperature *not* applied) and the decoder state
        after the first step, tensors `batch + [H]`.
        """
        cell = network_cell(self._network)
        source = tf.broadcast_to(
            self._source, tf.concat([batch_shape, tf.shape(self._source)[-1:]], 0)
        )
        zero = cell_initial_state(params["encoder"], batch_shape, cell=cell)
        state = cell_encode(params["encoder"], source, zero, cell=cell)  # batch + [H]
        return cell_step(params["decoder"], None, state, cell=cell)

    # -------------------------------------------------------------------- sampling
    def _sample_n(self, n, seed=None):
        seed = stateless_seed(seed, salt="EncoderDecoder")
        batch_rank = self._batch_rank()
        start = self.decoder_start()
        return sample_tokens(
            start.logits,
            start.state,
            start.step,
            n=n,
            num_steps=self._num_steps,
            seed=seed,
            batch_shape=tf.shape(start.logits)[:-1],
            batch_rank=batch_rank,
            eos=self._eos,
            lengths=self._lengths_for(tf.shape(start.logits)[:-1], trailing=1),
        )
