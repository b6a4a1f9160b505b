"""Greedy (argmax) decoding and beam search on `LSTMAutoregressive` and `EncoderDecoder`.

Both run in one `tf.while_loop` over steps on top of `dist.decoder_start()` (the state
after the prefix or the encoded source, and a step function), so they work under
`tf.function` and `jit_compile=True`, with batched prefixes / sources and batched params.

With an end token (`eos=`), a hypothesis that has emitted EOS is finished: it is only
extended by EOS at no cost, so finished and unfinished hypotheses compete on their exact
log-probabilities (`dist.log_prob` of the EOS-padded sequence); `length_penalty=a`
ranks the final beams by `log_prob / length**a` instead (Wu et al., 2016, without their
constant), which favours longer sequences for `a > 0`.

#### Beam search

Keep the `K` best prefixes (by their exact log-probability under the distribution,
temperature included). At every step, each of the `K` prefixes is extended by each of
the `V` tokens and the best `K` of the `K * V` candidates are kept (`tf.math.top_k`).
The initial beam is one empty prefix with score 0 and `K - 1` empty prefixes with score
`-inf`, so the beam never holds duplicates; with `K >= V**T` it enumerates every
sequence, and its first entry is the exact mode. Returned scores are the summed
per-step log-probabilities, which equal `dist.log_prob(tokens)` up to float rounding.
"""

from __future__ import annotations

import tensorflow as tf

from probseq.distributions._sequence import _TokenSequenceDistribution, sample_tokens
from probseq.distributions.seq2seq import EncoderDecoder

__all__ = ["beam_search", "greedy_decode"]


def _as_distribution(dist_or_network, source, target_steps) -> _TokenSequenceDistribution:
    if isinstance(dist_or_network, _TokenSequenceDistribution):
        if source is not None or target_steps is not None:
            raise ValueError(
                "pass source and target_steps only with a network, not with a distribution."
            )
        return dist_or_network
    if source is None or target_steps is None:
        raise ValueError(
            "decoding a Seq2SeqNetwork needs source and target_steps (or pass an "
            "LSTMAutoregressive / EncoderDecoder)."
        )
    return EncoderDecoder(dist_or_network, source, target_steps)


def greedy_decode(dist_or_network, source=None, target_steps: int | None = None) -> tf.Tensor:
    """Greedy decoding: at every step take the most probable next token.

    Args:
      dist_or_network: an `LSTMAutoregressive` or `EncoderDecoder`, or a
        `Seq2SeqNetwork` (then pass `source` and `target_steps`).
      source: int `[..., S]` source tokens (with a network only).
      target_steps: `T` (with a network only).

    Returns:
      int32 tokens `batch_shape + [T]`, EOS-padded after the first EOS with `eos`
      (`batch_shape` of the distribution; for a network, `source.shape[:-1]`).

    #### Examples

    ```python
    tokens = greedy_decode(net, source=[[3, 1, 4, 1, 5]], target_steps=2)  # ==> [1, 2]
    ```
    """
    dist = _as_distribution(dist_or_network, source, target_steps)
    start = dist.decoder_start()
    batch_shape = tf.shape(start.logits)[:-1]
    tokens = sample_tokens(
        start.logits,
        start.state,
        start.step,
        n=1,
        num_steps=dist.num_steps,
        seed=tf.zeros([2], tf.int32),
        batch_shape=batch_shape,
        batch_rank=dist.batch_shape.rank,
        eos=dist.eos,
        lengths=dist._lengths_for(batch_shape, trailing=1),
        greedy=True,
    )  # :: [1] + batch + [T]
    return tokens[0]


def beam_search(
    dist_or_network,
    source=None,
    target_steps: int | None = None,
    *,
    beam_width: int,
    length_penalty: float = 0.0,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Beam search for the most probable target sequences.

    Args:
      dist_or_network: an `LSTMAutoregressive` or `EncoderDecoder`, or a
        `Seq2SeqNetwork` (then pass `source` and `target_steps`).
      source: int `[..., S]` source tokens (with a network only).
      target_steps: `T` (with a network only).
      beam_width: `K >= 1`, the number of hypotheses kept per step.
      length_penalty: `a >= 0`; with `a > 0` (and an `eos`) the returned beams are
        sorted by `log_prob / length**a`, the length counting the EOS.

    Returns:
      `(tokens, log_probs)`: int32 `batch_shape + [K, T]` and float `batch_shape + [K]`,
      sorted best-first (by the length-penalized score when `length_penalty > 0`);
      `log_probs[..., k] == dist.log_prob(tokens[..., k, :])` (up to float rounding).
      When `K` exceeds the number of distinct sequences, the surplus entries have
      log-probability `-inf` (and arbitrary tokens).

    #### Examples

    ```python
    tokens, log_probs = beam_search(dist, beam_width=4)  # ==> [..., 4, T], [..., 4]
    ```
    """
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be a positive Python int, got {beam_width!r}.")
    if not length_penalty >= 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty!r}.")
    dist = _as_distribution(dist_or_network, source, target_steps)
    num_steps = dist.num_steps
    eos = dist.eos
    batch_rank = dist.batch_shape.rank
    if batch_rank is None:
        raise ValueError("beam_search needs a batch shape of known rank.")
    width = beam_width
    start = dist.decoder_start()
    batch_shape = tf.shape(start.logits)[:-1]
    vocab = tf.shape(start.logits)[-1]
    dtype = start.logits.dtype

    def expand(scores, logits, done=None):
        """Best `K` one-token extensions: `scores :: batch + [K]`, `logits :: + [V]`."""
        log_probs = tf.nn.log_softmax(logits)
        if done is not None:  # a finished hypothesis continues with EOS only, at no cost
            only_eos = tf.where(tf.range(vocab) == eos, 0.0, -_inf(dtype))
            log_probs = tf.where(done[..., None], only_eos, log_probs)
        candidates = scores[..., None] + log_probs  # :: batch + [K, V]
        flat = tf.reshape(candidates, tf.concat([batch_shape, [-1]], 0))  # :: batch + [K*V]
        best, index = tf.math.top_k(flat, k=width)  # sorted descending; K <= K*V always
        return best, index // vocab, index % vocab  # parent beam, token

    def reorder(x, parent):
        """Select beams: `x :: batch + [K] + f`, `parent :: batch + [K]`."""
        return tf.gather(x, parent, axis=batch_rank, batch_dims=batch_rank)

    # One live hypothesis (score 0) and K - 1 dead ones (-inf): no duplicate beams.
    scores = tf.concat(
        [
            tf.zeros(tf.concat([batch_shape, [1]], 0), dtype),
            tf.fill(tf.concat([batch_shape, [width - 1]], 0), -_inf(dtype)),
        ],
        axis=-1,
    )  # :: batch + [K]
    logits = tf.broadcast_to(
        start.logits[..., None, :], tf.concat([batch_shape, [width, vocab]], 0)
    )
    state = tf.nest.map_structure(
        lambda s: tf.broadcast_to(
            s[..., None, :], tf.concat([batch_shape, [width], tf.shape(s)[-1:]], 0)
        ),
        start.state,
    )
    scores, parent, token = expand(scores, logits)
    history = tf.one_hot(0, num_steps, dtype=tf.int32) * token[..., None]  # :: batch + [K, T]
    state = tf.nest.map_structure(lambda s: reorder(s, parent), state)
    finished = tf.zeros_like(token, tf.bool) if eos is None else tf.equal(token, eos)

    def body(t, scores, token, state, history, finished):
        logits, state = start.step(token, state)  # :: batch + [K, V]
        scores, parent, token = expand(scores, logits, None if eos is None else finished)
        state = tf.nest.map_structure(lambda s: reorder(s, parent), state)
        history = (
            reorder(history, parent) + tf.one_hot(t, num_steps, dtype=tf.int32) * (token[..., None])
        )
        if eos is not None:
            finished = tf.logical_or(reorder(finished, parent), tf.equal(token, eos))
        return t + 1, scores, token, state, history, finished

    if num_steps > 1:
        _, scores, _, _, history, _ = tf.while_loop(
            lambda t, *_: t < num_steps,
            body,
            (tf.constant(1), scores, token, state, history, finished),
            maximum_iterations=num_steps - 1,
        )
    if length_penalty and eos is not None:
        is_eos = tf.equal(history, eos)
        first = tf.reduce_min(tf.where(is_eos, tf.range(num_steps), num_steps), axis=-1)
        lengths = tf.cast(tf.minimum(first + 1, num_steps), dtype)  # :: batch + [K]
        _, order = tf.math.top_k(scores / lengths**length_penalty, k=width)
        scores, history = reorder(scores, order), reorder(history, order)
    return history, scores


def _inf(dtype) -> tf.Tensor:
    return tf.constant(float("inf"), dtype)
