"""`SequenceClassifier`: `p(label | x_1..x_T)`, a distribution over classes given a sequence.

A recurrent encoder (`probseq.nn.RealValuedNetwork`: a dense input projection, stacked
cells of any kind) reads the whole sequence from a zero state; its output projection
after the last step (step `L` of a sequence of length `L`) gives the logits of a
`tfd.Categorical` over `K` classes. Like `EncoderDecoder`, it is a distribution given its
conditioning input: the batch shape is the inputs' batch shape (broadcast with
`lengths` and with batched params, e.g. posterior draws).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

# The sentinel has no public name in TFP 0.25.
from tensorflow_probability.python.internal.parameter_properties import BIJECTOR_NOT_IMPLEMENTED

from probseq.distributions._sequence import NetworkParams, check_params
from probseq.nn.cells import cell_initial_state, network_cell
from probseq.nn.dense import dense_outputs

tfd = tfp.distributions

__all__ = ["SequenceClassifier"]


class SequenceClassifier(NetworkParams, tfd.AutoCompositeTensorDistribution):
    """Distribution over `K` class labels given a sequence, with a recurrent encoder.

    #### Mathematical details

    ```none
    h_t = cell(h_{t-1}, x_t)                   (h_0 = 0; t = 1..L, L the sequence's length)
    p(label = k | x) = softmax(W h_L + b)[k]
    ```

    Steps after `L` (padding) are never read: they are replaced by zeros before the
    pass, and the encoder is causal, so a padded batch scores exactly like the unpadded
    sequences.

    Shapes: event shape `[]` (int32 labels); batch shape is the broadcast of the inputs'
    leading dims, of `lengths` and of the params' leading dims. `sample(s)` has shape
    `s + batch`; `log_prob(y)` broadcasts `y` against the batch shape.

    Args:
      network: a `probseq.nn.RealValuedNetwork` with `input_size = D` (the features per
        step; for token inputs the vocabulary size) and `output_size = K >= 2`.
      inputs: float `[..., T, D]` real-valued steps, or int `[..., T]` token ids in
        `[0, D)` (read one-hot); the leading dims are batch dims.
      lengths: optional ints `[...]` in `[1, T]`: only the first `lengths` steps are data.
      params: optional structure like `network.params` with leading batch dims (e.g.
        posterior draws `[S, 1] + core` against inputs `[B, T, D]`: batch `[S, B]`).
      validate_args, allow_nan_stats, name: TFP conventions.

    #### Examples

    ```python
    net = probseq.RealValuedNetwork(input_size=8, hidden_size=32, output_size=10, seed=1)
    images = tf.random.stateless_uniform([4, 8, 8], (1, 2))  # 4 images, rows as steps
    labels = SequenceClassifier(net, images)
    labels.probs()                    # ==> float32 [4, 10]
    labels.log_prob([3, 1, 4, 1])     # ==> float32 [4]
    ```
    """

    def __init__(
        self,
        network,
        inputs,
        *,
        lengths=None,
        params=None,
        validate_args: bool = False,
        allow_nan_stats: bool = True,
        name: str = "SequenceClassifier",
    ):
        parameters = dict(locals())
        if getattr(network, "output_size", 0) < 2 or not hasattr(network, "input_size"):
            raise ValueError(
                "network must be a RealValuedNetwork with output_size = the number of "
                f"classes (>= 2), got {network!r}."
            )
        with tf.name_scope(name) as name:
            self._network = network
            self._cell = network_cell(network)
            self._inputs = _check_inputs(inputs, network)
            self._params = None if params is None else check_params(network, params)
            self._lengths = (
                None
                if lengths is None
                else tf.cast(tf.convert_to_tensor(lengths, dtype_hint=tf.int32), tf.int32)
            )
            super().__init__(
                dtype=tf.int32,
                reparameterization_type=tfd.NOT_REPARAMETERIZED,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            inputs=tfp.util.ParameterProperties(
                event_ndims=lambda self: 1 if self._inputs.dtype.is_integer else 2,
                default_constraining_bijector_fn=BIJECTOR_NOT_IMPLEMENTED,
            ),
            **cls._network_parameter_properties(),
        )

    # ---------------------------------------------------------------- properties
    @property
    def inputs(self) -> tf.Tensor:
        """The conditioning sequences, `[..., T, D]` floats or `[..., T]` token ids."""
        return self._inputs

    @property
    def num_classes(self) -> int:
        return self._network.output_size

    def _input_batch_shape(self):
        rank = 1 if self._inputs.dtype.is_integer else 2
        return self._inputs.shape[:-rank]

    def _batch_shape(self):
        shape = tf.broadcast_static_shape(
            self._input_batch_shape(), self.params_in_use["output"]["bias"].shape[:-1]
        )
        if self._lengths is not None:
            shape = tf.broadcast_static_shape(shape, self._lengths.shape)
        return shape

    def _batch_shape_tensor(self):
        rank = 1 if self._inputs.dtype.is_integer else 2
        shape = tf.broadcast_dynamic_shape(
            tf.shape(self._inputs)[:-rank], tf.shape(self.params_in_use["output"]["bias"])[:-1]
        )
        if self._lengths is not None:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(self._lengths))
        return shape

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _default_event_space_bijector(self):
        return None  # discrete labels, as for tfd.Categorical

    # ------------------------------------------------------------------ the model
    def logits(self) -> tf.Tensor:
        """Class logits `batch + [K]` after each sequence's last step."""
        batch_shape = self.batch_shape_tensor()
        rank = self.batch_shape.rank
        if rank is None:
            raise ValueError(f"{self.name} needs a batch shape of known rank.")
        params = self._broadcast_params(batch_shape)
        x = self._features()  # :: input batch + [T, D]
        steps = tf.shape(x)[-2:]
        x = tf.broadcast_to(x, tf.concat([batch_shape, steps], 0))
        last = tf.fill(batch_shape, steps[0] - 1)
        if self._lengths is not None:
            lengths = tf.broadcast_to(self._lengths, batch_shape)
            keep = tf.range(steps[0]) < lengths[..., None]  # :: batch + [T]
            x = tf.where(keep[..., None], x, tf.zeros_like(x))  # padding is never read
            last = lengths - 1
        state = cell_initial_state(params, batch_shape, cell=self._cell)
        outputs, _ = dense_outputs(params, x, state, cell=self._cell)  # :: batch + [T, K]
        picked = tf.gather(outputs, last[..., None], axis=rank, batch_dims=rank)
        return picked[..., 0, :]

    def probs(self) -> tf.Tensor:
        """Class probabilities `batch + [K]`."""
        return tf.nn.softmax(self.logits(), axis=-1)

    def _categorical(self) -> tfd.Categorical:
        return tfd.Categorical(logits=self.logits())

    def _log_prob(self, y):
        return self._categorical().log_prob(y)

    def _sample_n(self, n, seed=None):
        return self._categorical().sample(n, seed=seed)

    def _mode(self):
        return tf.argmax(self.logits(), axis=-1, output_type=tf.int32)

    def _entropy(self):
        return self._categorical().entropy()

    # ------------------------------------------------------------------- internals
    def _features(self) -> tf.Tensor:
        x = tf.convert_to_tensor(self._inputs)
        if x.dtype.is_integer:
            return tf.one_hot(x, self._network.input_size, dtype=self._network.dtype)
        return x


def _check_inputs(inputs, network) -> tf.Tensor:
    """Float `[..., T, D]` with `D = network.input_size`, or int tokens `[..., T]`."""
    if isinstance(inputs, tf.Variable):
        x = inputs
    else:
        x = tf.convert_to_tensor(inputs, dtype_hint=network.dtype, name="inputs")
    if x.dtype.is_bool:
        raise TypeError("inputs must be floats (real-valued steps) or ints (tokens), got bool.")
    shape = x.shape
    if x.dtype.is_integer:
        if shape.rank is None or shape.rank < 1 or shape[-1] == 0:
            raise ValueError(f"token inputs must have shape [..., T] with T >= 1, got {shape}.")
        return tf.cast(x, tf.int32)
    if shape.rank is None or shape.rank < 2 or shape[-1] != network.input_size or shape[-2] == 0:
        raise ValueError(
            f"inputs must have shape [..., T, {network.input_size}] (T >= 1 steps of the "
            f"network's input_size features), got {shape}."
        )
    return x if isinstance(x, tf.Variable) else tf.cast(x, network.dtype)
