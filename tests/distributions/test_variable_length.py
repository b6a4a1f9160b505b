"""Variable-length token sequences: `eos`, `lengths` and ragged values (issue 12).

Contract (probseq/distributions/_lengths.py): with `eos` the distribution is over
sequences ending at their first EOS or at `num_steps`, EOS padding after it unscored, and
exactly normalized over the canonical sequences; `lengths` (or a ragged value) make a
padded batch score exactly like the unpadded sequences, padding never reaching the loss;
sampling stops per sequence and pads.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from lstm_reference import all_sequences, bernstein_radius, eos_canonical, perturbed_params

import probseq
from probseq.distributions import EncoderDecoder

V, H, T, EOS = 3, 5, 3, 0
ALL = all_sequences(V, T)  # :: [27, T]
CELLS = ("lstm", "gru", "rnn")
N = 100_000
FAILURE_PROBABILITY = 1e-9


def _net(cell: str = "lstm", seed: int = 3) -> probseq.LSTMNetwork:
    net = probseq.LSTMNetwork(V, H, seed=(seed, 0), cell=cell)
    for i, variable in enumerate(net.trainable_variables):
        variable.assign_add(tf.random.stateless_normal(variable.shape, (seed, i), stddev=0.8))
    return net


CASES = {
    "plain": {},
    "prefix": {"prefix": [[1, 2], [2, 0]]},
    "temperature": {"temperature": [0.6, 1.7]},
}


# ------------------------------------------------------------------- normalization
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("case", [*CASES, "batched_params"])
def test_eos_distribution_is_normalized_over_canonical_sequences(cell, case):
    net = _net(cell)
    kwargs = dict(CASES.get(case, {}))
    if case == "batched_params":
        kwargs["params"] = perturbed_params(net, [2], seed=9)
    dist = probseq.LSTMAutoregressive(net, T, eos=EOS, **kwargs)
    batch = dist.batch_shape.as_list()
    x = ALL.reshape((len(ALL),) + (1,) * len(batch) + (T,))
    log_prob = dist.log_prob(x).numpy().astype(np.float64)  # :: [27] + batch
    canonical = eos_canonical(ALL, EOS)
    assert canonical.sum() == 15  # 1 + 2 + 4 + 8 sequences end at position 0, 1, 2, none
    assert np.all(np.isneginf(log_prob[~canonical]))
    np.testing.assert_allclose(np.exp(log_prob[canonical]).sum(0), 1.0, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_lengths_give_the_distribution_of_the_first_tokens(cell):
    net = _net(cell)
    for length in range(T + 1):
        dist = probseq.LSTMAutoregressive(net, T, lengths=length)
        log_prob = dist.log_prob(ALL).numpy().astype(np.float64)
        # Every distinct prefix appears V**(T - L) times among ALL, padding ignored.
        total = np.exp(log_prob).sum() / V ** (T - length)
        assert total == pytest.approx(1.0, abs=1e-5)
        if length > 0:
            short = probseq.LSTMAutoregressive(net, length).log_prob(ALL[:, :length])
            np.testing.assert_allclose(log_prob, short, rtol=1e-6, atol=1e-6)


def test_encoder_decoder_with_eos_is_normalized():
    net = probseq.nn.Seq2SeqNetwork(4, V, hidden_size=H, seed=2)
    dist = EncoderDecoder(net, [[1, 2, 3], [3, 0, 1]], T, eos=EOS)
    log_prob = dist.log_prob(ALL[:, None, :]).numpy().astype(np.float64)  # :: [27, 2]
    canonical = eos_canonical(ALL, EOS)
    np.testing.assert_allclose(np.exp(log_prob[canonical]).sum(0), [1.0, 1.0], atol=1e-5)
    assert np.all(np.isneginf(log_prob[~canonical]))


# ---------------------------------------------------- padded batch = unpadded rows
ROWS = [[1, 2, 1, 2, 2], [2], [1, 1, 0], [2, 1]]


@pytest.mark.parametrize("eos", [None, EOS])
def test_ragged_and_padded_batches_score_like_the_unpadded_rows(eos):
    net = _net("lstm")
    width = 6
    dist = probseq.LSTMAutoregressive(net, width, eos=eos)

    def reference(row):
        row = list(row) + ([] if eos is None or EOS in row else [EOS])
        return probseq.LSTMAutoregressive(net, len(row)).log_prob(row)

    with tf.GradientTape(persistent=True) as tape:
        from_list = dist.log_prob(ROWS)
        from_ragged = dist.log_prob(tf.ragged.constant(ROWS))
        lengths = [len(row) for row in ROWS]
        junk = np.full((len(ROWS), width), -7, np.int32)  # out-of-range padding
        for i, row in enumerate(ROWS):
            junk[i, : len(row)] = row
        padded = probseq.LSTMAutoregressive(net, width, eos=eos, lengths=lengths).log_prob(junk)
        expected = tf.stack([reference(row) for row in ROWS])
        totals = [tf.reduce_sum(v) for v in (from_list, from_ragged, padded, expected)]
    want = tape.gradient(totals[-1], net.trainable_variables)
    for got, total in zip((from_list, from_ragged, padded), totals, strict=False):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        grads = tape.gradient(total, net.trainable_variables)
        for g, w in zip(grads, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_a_bucketed_batch_narrower_than_num_steps():
    net = _net("gru")
    tokens = np.array([[1, 2, 0], [2, 1, 1]], np.int32)  # width 3 < num_steps 8
    narrow = probseq.LSTMAutoregressive(net, 8, eos=EOS, lengths=[3, 2]).log_prob(tokens)
    wide = np.zeros((2, 8), np.int32)
    wide[:, :3] = tokens
    full = probseq.LSTMAutoregressive(net, 8, eos=EOS, lengths=[3, 2]).log_prob(wide)
    np.testing.assert_allclose(narrow, full, rtol=1e-6)
    with pytest.raises(ValueError, match="num_steps=3"):
        probseq.LSTMAutoregressive(net, 3).log_prob(tokens[:, :2])  # fixed length: exact


def test_ragged_log_prob_in_tf_function_and_xla():
    net = _net("rnn")
    dist = probseq.LSTMAutoregressive(net, 6, eos=EOS)
    eager = dist.log_prob(tf.ragged.constant(ROWS))
    spec = tf.RaggedTensorSpec([None, None], tf.int32)
    graph = tf.function(dist.log_prob, input_signature=[spec])
    np.testing.assert_allclose(graph(tf.ragged.constant(ROWS)), eager, rtol=1e-6)
    padded = tf.ragged.constant(ROWS).to_tensor(shape=[len(ROWS), 6])
    lengths = [len(r) for r in ROWS]
    xla = tf.function(
        lambda x: probseq.LSTMAutoregressive(net, 6, eos=EOS, lengths=lengths).log_prob(x),
        jit_compile=True,
    )
    np.testing.assert_allclose(xla(padded), eager, rtol=1e-5)


# -------------------------------------------------------------------------- sampling


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [{"eos": EOS}, {"eos": EOS, "prefix": [2]}, {"lengths": 2}])
def test_samples_are_canonical_and_match_exp_log_prob(kwargs):
    dist = probseq.LSTMAutoregressive(_net("lstm"), T, **kwargs)
    samples = dist.sample(N, seed=(4, 2)).numpy()  # :: [N, T]
    if "eos" in kwargs:
        assert np.all(eos_canonical(samples, EOS))
    else:
        assert np.all(samples[:, 2:] == 0)  # padding past the length
    codes = samples @ (V ** np.arange(T - 1, -1, -1))
    freqs = np.bincount(codes, minlength=V**T) / N
    probs = np.exp(dist.log_prob(ALL).numpy().astype(np.float64))
    if "lengths" in kwargs:  # padding is fixed at 0: only those rows are sampled
        probs = np.where(np.all(ALL[:, 2:] == 0, axis=1), probs, 0.0)
    probs = np.where(np.isfinite(probs), probs, 0.0)
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)
    radius = bernstein_radius(probs, N, FAILURE_PROBABILITY / probs.size)
    assert np.all(np.abs(freqs - probs) <= radius)


def test_eos_sampling_is_seeded_in_eager_tf_function_and_xla():
    dist = probseq.LSTMAutoregressive(_net("gru"), 7, eos=EOS, temperature=[0.7, 1.3])
    eager = dist.sample(6, seed=(5, 6)).numpy()
    assert eager.shape == (6, 2, 7)
    np.testing.assert_array_equal(tf.function(lambda: dist.sample(6, seed=(5, 6)))(), eager)
    xla = tf.function(lambda: dist.sample(6, seed=(5, 6)), jit_compile=True)
    np.testing.assert_array_equal(xla(), xla())  # deterministic (XLA's own RNG lowering)
    assert np.all(eos_canonical(eager.reshape(-1, 7), EOS))
    assert np.all(np.isfinite(dist.log_prob(eager)))


def test_eos_sampling_equals_fixed_length_sampling_until_the_end():
    """The same seed draws the same tokens up to (and including) each sequence's EOS."""
    net = _net("lstm")
    free = probseq.LSTMAutoregressive(net, 6).sample(200, seed=(8, 8)).numpy()
    ended = probseq.LSTMAutoregressive(net, 6, eos=EOS).sample(200, seed=(8, 8)).numpy()
    for a, b in zip(free, ended, strict=True):
        stop = np.flatnonzero(a == EOS)
        end = stop[0] + 1 if stop.size else 6
        np.testing.assert_array_equal(a[:end], b[:end])
        assert np.all(b[end:] == EOS)


# ---------------------------------------------------------------- shapes and errors
def test_batch_shape_includes_lengths_and_slicing_keeps_them():
    dist = probseq.LSTMAutoregressive(_net(), T, lengths=[[1], [2], [3]], eos=EOS)
    assert dist.batch_shape == [3, 1] and dist.eos == EOS
    assert dist[1:].batch_shape == [2, 1]
    np.testing.assert_array_equal(dist[1:].lengths, [[2], [3]])
    assert dist.copy().eos == EOS
    assert dist.sample(2, seed=(1, 1)).shape == [2, 3, 1, T]


def test_bad_variable_length_arguments():
    net = _net()
    with pytest.raises(ValueError, match=r"eos must be in \[0, vocab_size=3\)"):
        probseq.LSTMAutoregressive(net, T, eos=3)
    with pytest.raises(TypeError, match="eos must be a Python int"):
        probseq.LSTMAutoregressive(net, T, eos=1.0)
    with pytest.raises(TypeError, match="lengths must be integers"):
        probseq.LSTMAutoregressive(net, T, lengths=[1.5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"lengths must be <= num_steps={T}"):
        probseq.LSTMAutoregressive(net, T, lengths=[4], validate_args=True)
    with pytest.raises(ValueError, match="more than num_steps=3"):
        probseq.LSTMAutoregressive(net, T, eos=EOS).log_prob([[1, 2, 1, 1], [1]])
    with pytest.raises(ValueError, match="one way only"):
        probseq.LSTMAutoregressive(net, T, lengths=[1, 1]).log_prob([[1, 2], [1]])
    with pytest.raises(TypeError, match="integer token ids"):
        probseq.LSTMAutoregressive(net, T).log_prob(tf.ragged.constant([[1.0], [1.0, 2.0]]))
    checked = probseq.LSTMAutoregressive(net, T, lengths=[2], validate_args=True)
    assert np.isfinite(checked.log_prob([[1, 2, -9]]))  # padding may hold anything
    with pytest.raises(tf.errors.InvalidArgumentError, match="tokens must be >= 0"):
        checked.log_prob([[1, -2, 0]])


def test_gradients_reach_every_variable_with_eos():
    net = _net("gru")
    dist = probseq.LSTMAutoregressive(net, 6, eos=EOS, temperature=tf.Variable(0.9))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob(ROWS))
    grads = tape.gradient(loss, dist.trainable_variables)
    assert len(grads) == len(net.trainable_variables) + 1
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


def test_fit_map_on_ragged_batches():
    net = _net("lstm")
    dist = probseq.LSTMAutoregressive(net, 6, eos=EOS)
    rows = tf.ragged.constant(ROWS * 8)
    data = tf.data.Dataset.from_tensor_slices(rows).ragged_batch(8).repeat()
    before = float(tf.reduce_mean(dist.log_prob(tf.ragged.constant(ROWS))))
    probseq.inference.fit_map(
        dist, data, num_examples=32, num_steps=40, learning_rate=0.05, prior=None
    )
    after = float(tf.reduce_mean(dist.log_prob(tf.ragged.constant(ROWS))))
    assert after > before + 0.5


def test_default_event_space_bijector_is_none_as_for_categorical():
    """Discrete events have no unconstraining bijector (issue 12: it raised before), so a
    joint distribution pinned at the text gets the bijector of its other parts."""
    net = _net()
    dist = probseq.LSTMAutoregressive(net, T, eos=EOS)
    assert dist.experimental_default_event_space_bijector() is None
    tfd = tfp.distributions
    joint = tfd.JointDistributionNamed(
        dict(
            temperature=tfd.LogNormal(0.0, 1.0),
            text=lambda temperature: probseq.LSTMAutoregressive(net, T, temperature=temperature),
        )
    )
    bijector = joint.experimental_pin(text=[1, 2, 0]).experimental_default_event_space_bijector()
    assert float(bijector.forward({"temperature": tf.constant(0.0)})["temperature"]) == 1.0
