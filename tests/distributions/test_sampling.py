"""Sampling agrees with `exp(log_prob)`; stateless seeds give reproducible samples."""

import math

import numpy as np
import pytest
import tensorflow as tf
from lstm_reference import all_sequences, bernstein_radius, perturbed_params, randomized_network

import probseq

V, H, T = 3, 4, 4
ALL = all_sequences(V, T)  # :: [81, T], row i is the base-V expansion of i
NET = randomized_network(V, H, seed=50, scale=1.0, dtype=tf.float32)
N = 200_000

# Family-wise failure probability of one frequency check (all cells, all batch members).
FAILURE_PROBABILITY = 1e-9


def _radius(p: np.ndarray, n: int = N) -> np.ndarray:
    # Union bound over every cell compared in one test: each gets delta / (#cells).
    return bernstein_radius(p, n, FAILURE_PROBABILITY / p.size)


def _frequencies(samples: np.ndarray) -> np.ndarray:
    """Empirical frequency of every full sequence: `[n, ..., T]` -> `[..., V**T]`."""
    codes = samples @ (V ** np.arange(T - 1, -1, -1))  # :: [n, ...]
    codes = np.moveaxis(codes, 0, -1).reshape(-1, samples.shape[0])
    counts = np.stack([np.bincount(row, minlength=V**T) for row in codes])
    return (counts / samples.shape[0]).reshape(samples.shape[1:-1] + (V**T,))


def _exact_probs(dist) -> np.ndarray:
    """`p(x)` of all sequences for every batch member: `batch + [V**T]`."""
    x = ALL.reshape((len(ALL),) + (1,) * dist.batch_shape.rank + (T,))
    log_prob = dist.log_prob(x).numpy().astype(np.float64)  # :: [81] + batch
    return np.moveaxis(np.exp(log_prob), 0, -1)


def _assert_frequencies_match(samples: np.ndarray, probs: np.ndarray):
    freqs = _frequencies(samples)
    assert freqs.shape == probs.shape
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    excess = np.abs(freqs - probs) - _radius(probs)
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert np.all(excess <= 0.0), (
        f"cell {worst}: frequency {freqs[worst]:.5f} vs probability {probs[worst]:.5f} "
        f"(allowed deviation {_radius(probs)[worst]:.5f})"
    )


def _distinguishable(probs: np.ndarray, other: np.ndarray) -> bool:
    """True if the check above, passing for `probs`, must fail for samples from `other`.

    If samples came from `other`, their frequencies stay within `_radius(other)` of it
    (w.p. >= 1 - FAILURE_PROBABILITY); so one cell with
    `|probs - other| > _radius(probs) + _radius(other)` makes the check fail.
    """
    return bool(np.any(np.abs(probs - other) > _radius(probs) + _radius(other)))


def test_radius_is_the_bernstein_bound():
    # A hand-checked value: p = 1/81, n = 200000, delta = 1e-9 / 81.
    a = math.log(2 * 81 / 1e-9) / 200_000
    p = 1 / 81
    expected = a / 3 + math.sqrt(a * a / 9 + 2 * a * p * (1 - p))
    np.testing.assert_allclose(_radius(np.full(81, p))[0], expected, rtol=1e-12)
    assert 0.0015 < expected < 0.002  # about 14% of p: tight enough to have power


CASES = {
    "plain": {},
    "prefix_temperature": {"prefix": [2, 0, 1], "temperature": 0.6},
    "batched_temperature_prefix": {"prefix": [[0, 1], [2, 2]], "temperature": [0.5, 2.0]},
    "batched_params": {"params": "2"},
}


def _dist(case):
    kwargs = dict(CASES[case])
    if kwargs.get("params") == "2":
        kwargs["params"] = perturbed_params(NET, [2], seed=51, scale=1.0)
    return probseq.LSTMAutoregressive(NET, T, **kwargs)


@pytest.mark.parametrize("case", list(CASES))
def test_sample_frequencies_match_exp_log_prob(case):
    dist = _dist(case)
    samples = dist.sample(N, seed=(2024, 7)).numpy()
    _assert_frequencies_match(samples, _exact_probs(dist))


def test_frequency_check_has_power():
    """Samplers that ignore the prefix, the temperature or a batch member would fail."""
    probs = _exact_probs(_dist("prefix_temperature"))
    assert _distinguishable(probs, _exact_probs(_dist("plain")))
    no_temperature = probseq.LSTMAutoregressive(NET, T, prefix=[2, 0, 1])
    assert _distinguishable(probs, _exact_probs(no_temperature))
    no_prefix = probseq.LSTMAutoregressive(NET, T, temperature=0.6)
    assert _distinguishable(probs, _exact_probs(no_prefix))
    batched = _exact_probs(_dist("batched_temperature_prefix"))
    assert _distinguishable(batched[0], batched[1])
    batched_params = _exact_probs(_dist("batched_params"))
    assert _distinguishable(batched_params[0], batched_params[1])


def test_xla_sample_frequencies_match_exp_log_prob():
    dist = _dist("batched_temperature_prefix")
    sample = tf.function(lambda seed: dist.sample(N, seed=seed), jit_compile=True)
    _assert_frequencies_match(sample(tf.constant([3, 9])).numpy(), _exact_probs(dist))


# ------------------------------------------------------------------------ seeds
def _seeded(seed, case="batched_temperature_prefix", n=50):
    return _dist(case).sample(n, seed=seed).numpy()


def test_same_seed_same_samples():
    np.testing.assert_array_equal(_seeded((1, 2)), _seeded((1, 2)))


def test_different_seeds_differ():
    first = _seeded((1, 2))
    for other in [(2, 1), (1, 3), (0, 0)]:
        assert np.any(first != _seeded(other)), other


@pytest.mark.parametrize(
    "seed",
    [tf.constant([1, 2]), np.array([1, 2], np.int32), np.array([1, 2]), [1, 2]],
    ids=["tensor", "numpy_int32", "numpy_default_int", "list"],
)
def test_pair_of_ints_and_tensor_seeds_agree(seed):
    # `tfd.Normal(0., 1.).sample(seed=np.array([1, 2]))` works in TFP 0.25, so a numpy
    # pair of (default, int64) ints is a valid stateless seed under TFP semantics too.
    np.testing.assert_array_equal(_seeded((1, 2)), _seeded(seed))


def test_batch_members_and_steps_get_independent_noise():
    """Identical batch members, and successive steps, must not share their random draws.

    At temperature 1000 every conditional is uniform up to O(1e-3), so two independently
    drawn tokens agree with probability ~1/3; reusing the same noise would make them agree
    (almost) always. With n = 2000 pairs, Hoeffding gives
    P(agreement fraction >= 1/2) <= exp(-2 n (1/2 - 0.334)^2) < 1e-47 for correct code.
    """
    n = 2000
    dist = probseq.LSTMAutoregressive(NET, T, prefix=[[1], [1]], temperature=1000.0)
    samples = dist.sample(n, seed=(5, 5)).numpy()  # :: [n, 2, T]
    assert np.mean(samples[:, 0] == samples[:, 1]) < 0.5
    for t in range(1, T):
        assert np.mean(samples[:, 0, t] == samples[:, 0, 0]) < 0.5, t


def test_eager_equals_tf_function():
    dist = _dist("batched_temperature_prefix")
    eager = dist.sample([4, 3], seed=(8, 9)).numpy()
    graph = tf.function(lambda seed: dist.sample([4, 3], seed=seed))
    np.testing.assert_array_equal(graph(tf.constant([8, 9])).numpy(), eager)
    # A seed constant captured inside the function works the same way.
    fixed = tf.function(lambda: dist.sample([4, 3], seed=(8, 9)))
    np.testing.assert_array_equal(fixed().numpy(), eager)


def test_eager_equals_tf_function_with_batched_params():
    dist = _dist("batched_params")
    eager = dist.sample(7, seed=(1, 1)).numpy()
    graph = tf.function(lambda seed: dist.sample(7, seed=seed))
    np.testing.assert_array_equal(graph(tf.constant([1, 1])).numpy(), eager)


def test_xla_sampling_is_deterministic():
    dist = _dist("batched_temperature_prefix")
    sample = tf.function(lambda seed: dist.sample(64, seed=seed), jit_compile=True)
    first = sample(tf.constant([4, 2])).numpy()
    second = sample(tf.constant([4, 2])).numpy()
    third = sample(tf.constant([4, 3])).numpy()
    assert first.shape == (64, 2, T)
    assert np.all((first >= 0) & (first < V))
    np.testing.assert_array_equal(first, second)
    assert np.any(first != third)
