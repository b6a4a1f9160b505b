"""The one teacher-forced likelihood kernel of the token models.

`token_log_probs(params, inputs, targets, state)` returns the per-step log-probabilities
of `targets` given the tokens read so far, and the state after the inputs. Every
likelihood of a token model is this kernel plus bookkeeping:

* `LSTMAutoregressive.log_prob` / `EncoderDecoder.log_prob`: the first target is scored
  from the start logits (`first_logits`), then each input `x_t` gives the logits of
  `x_{t+1}`; masks for `eos` / `lengths` are applied to the per-step values;
* `probseq.evaluation.evaluate` (windows): the same, for a batch of windows from the
  zero state, with `S` posterior draws on the params' leading dim;
* `probseq.evaluation.evaluate` (stream) and the exported SavedModel: chunks of a stream,
  carrying `state` from chunk to chunk, no `first_logits`.
"""

from __future__ import annotations

import tensorflow as tf

from probseq.nn.cells import Cell, cell_logits

__all__ = ["token_log_probs"]


def token_log_probs(
    params: dict,
    inputs: tf.Tensor | None,
    targets: tf.Tensor,
    state,
    *,
    cell: Cell,
    temperature=None,
    first_logits: tf.Tensor | None = None,
    masks=None,
    compute_dtype=None,
) -> tuple[tf.Tensor, tuple]:
    """Per-step `log p(target_t | tokens read before it)` in nats, time-major.

    Args:
      params: decoder params (layers + `"output"`), param batch `pb`.
      inputs: int `pb + rest + [C]`, the tokens read one per step starting from `state`
        (None or `C = 0`: none).
      targets: int `[C'] + pb + rest`, time-major: the token scored at each step, with
        `C' = C + 1` when `first_logits` is given (its target first), else `C' = C`.
      state: per-layer states `pb + rest + [H]` before the first input.
      cell: the network's `Cell`.
      temperature: None, or a tensor broadcasting against `[C'] + pb + rest + [V]` that
        divides the logits.
      first_logits: optional `pb + rest + [V]`, the logits of the first target before any
        input is read (the start step, or the step after a prefix).
      masks: optional locked-dropout masks of `cell_logits` (training only).
      compute_dtype: the matmuls' precision (`cell_logits`; None: the params' dtype).

    Returns:
      `(log_probs :: [C'] + pb + rest, state after the inputs)`.
    """
    parts = [] if first_logits is None else [first_logits[None]]
    if inputs is not None and (inputs.shape[-1] is None or inputs.shape[-1] > 0):
        logits, state = cell_logits(
            params, inputs, state, cell=cell, time_major=True, masks=masks,
            compute_dtype=compute_dtype,
        )  # fmt: skip
        parts.append(logits)  # :: [C] + pb + rest + [V]
    logits = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
    if temperature is not None:
        logits = logits / temperature
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    return -nll, state
