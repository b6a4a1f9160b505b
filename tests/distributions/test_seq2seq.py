"""Contract of `EncoderDecoder` (for every cell) and of greedy decoding / beam search."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from lstm_reference import bernstein_radius

from probseq.distributions import EncoderDecoder, beam_search, greedy_decode
from probseq.nn import CELL_NAMES, Seq2SeqNetwork

tfd = tfp.distributions

SRC_V, V, H, T = 4, 3, 4, 3
ALL = np.array(list(itertools.product(range(V), repeat=T)), np.int32)  # :: [V**T, T]
SOURCES = np.array([[1, 3, 0, 2], [2, 2, 1, 0]], np.int32)  # batch [2], S = 4


def _network(cell: str, num_layers: int = 1, seed: int = 0, dtype=tf.float64) -> Seq2SeqNetwork:
    """Seeded network with every variable (biases included) perturbed, so all terms matter."""
    net = Seq2SeqNetwork(SRC_V, V, H, num_layers, cell=cell, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    for variable in tf.nest.flatten(net.params):
        variable.assign_add(0.8 * rng.standard_normal(variable.shape))
    return net


def _perturbed(net, batch_shape, seed: int, scale: float = 0.6) -> dict:
    rng = np.random.default_rng(seed)
    return tf.nest.map_structure(
        lambda v: tf.constant(
            v.numpy() + scale * rng.standard_normal(tuple(batch_shape) + tuple(v.shape)), v.dtype
        ),
        net.params,
    )


NETS = {cell: _network(cell, seed=i) for i, cell in enumerate(CELL_NAMES)}
NETS32 = {cell: _network(cell, seed=10 + i, dtype=tf.float32) for i, cell in enumerate(CELL_NAMES)}


# ------------------------------------------------------------ numpy reference
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _layer_norm(x, eps=1e-5):
    return (x - x.mean()) / np.sqrt(x.var() + eps)


def _np_cell(cell, x_proj, h_proj, state):
    hidden = state[-1].shape[-1]
    blocks = [lambda z, n=n: z[n * hidden : (n + 1) * hidden] for n in range(4)]
    if cell == "lstm":
        z = x_proj + h_proj
        i, f, o, u = (b(z) for b in blocks)
        c = _sigmoid(f + 1.0) * state[0] + _sigmoid(i) * np.tanh(u)
        return (c, _sigmoid(o) * np.tanh(c))
    if cell == "lnlstm":  # each gate's h Wh and the new cell normalized over the units
        z = x_proj + np.concatenate([_layer_norm(b(h_proj)) for b in blocks])
        i, f, o, u = (b(z) for b in blocks)
        c = _sigmoid(f + 1.0) * state[0] + _sigmoid(i) * np.tanh(u)
        return (c, _sigmoid(o) * np.tanh(_layer_norm(c)))
    if cell == "gru":
        r = _sigmoid(blocks[0](x_proj) + blocks[0](h_proj))
        z = _sigmoid(blocks[1](x_proj) + blocks[1](h_proj))
        n = np.tanh(blocks[2](x_proj) + r * blocks[2](h_proj))
        return ((1.0 - z) * n + z * state[0],)
    return (np.tanh(x_proj + h_proj),)


def _np_layers(cell, layers, token, state):
    new, x = [], None
    for index, layer_state in enumerate(state):
        layer = layers[f"layer_{index}"]
        if index == 0:
            x_proj = layer["bias"] + (0.0 if token is None else layer["input_kernel"][token])
        else:
            x_proj = x @ layer["input_kernel"] + layer["bias"]
        out = _np_cell(cell, x_proj, layer_state[-1] @ layer["recurrent_kernel"], layer_state)
        new.append(out)
        x = out[-1]
    return x, new


def np_log_prob(cell, params, source, target, temperature=1.0) -> float:
    """`log p(target | source)` for unbatched numpy params, written out step by step."""
    enc, dec = params["encoder"], params["decoder"]
    num_layers = sum(1 for key in enc if key.startswith("layer_"))
    size = 2 if cell in ("lstm", "lnlstm") else 1
    state = [(np.zeros(H),) * size for _ in range(num_layers)]
    for token in source:
        _, state = _np_layers(cell, enc, int(token), state)
    total, token = 0.0, None
    for target_token in target:
        x, state = _np_layers(cell, dec, token, state)
        logits = (x @ dec["output"]["kernel"] + dec["output"]["bias"]) / temperature
        logits = logits - logits.max()
        total += logits[target_token] - np.log(np.exp(logits).sum())
        token = int(target_token)
    return total


def _np_params(params):
    return tf.nest.map_structure(lambda p: np.asarray(p, np.float64), params)


# --------------------------------------------------------------------- basics
@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_log_prob_matches_numpy(cell, num_layers):
    net = _network(cell, num_layers, seed=7)
    dist = EncoderDecoder(net, SOURCES, T, temperature=[0.7, 1.3])
    targets = ALL[[0, 5, 17, 26]][:, None, :]  # :: [4, 1, T] -> broadcast to [4, 2]
    log_prob = dist.log_prob(targets).numpy()
    assert log_prob.shape == (4, 2)
    params = _np_params(net.params)
    for i, j in itertools.product(range(4), range(2)):
        want = np_log_prob(cell, params, SOURCES[j], targets[i, 0], [0.7, 1.3][j])
        np.testing.assert_allclose(log_prob[i, j], want, rtol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_batched_params_match_numpy(cell):
    net = NETS[cell]
    params = _perturbed(net, [2, 1], seed=3)  # batch [2, 1] x source batch [2] -> [2, 2]
    dist = EncoderDecoder(net, SOURCES, T, params=params)
    assert dist.batch_shape == [2, 2]
    log_prob = dist.log_prob(ALL[7]).numpy()
    for p, j in itertools.product(range(2), range(2)):
        member = _np_params(tf.nest.map_structure(lambda x, p=p: x[p, 0], params))
        want = np_log_prob(cell, member, SOURCES[j], ALL[7])
        np.testing.assert_allclose(log_prob[p, j], want, rtol=1e-10)


def test_source_matters_and_class_contract():
    net = NETS["lstm"]
    dist = EncoderDecoder(net, SOURCES, T)
    log_prob = dist.log_prob(ALL[:, None, :]).numpy()
    assert np.max(np.abs(log_prob[:, 0] - log_prob[:, 1])) > 0.1
    assert isinstance(dist, tfd.Distribution)
    assert dist.reparameterization_type == tfd.NOT_REPARAMETERIZED
    assert dist.dtype == tf.int32
    assert dist.event_shape == [T] and dist.num_steps == dist.target_steps == T
    assert dist.vocab_size == V and dist.name == "EncoderDecoder"
    assert dist.parameters["network"] is net and dist.parameters["target_steps"] == T
    np.testing.assert_array_equal(dist.source, SOURCES)
    assert len(dist.trainable_variables) == len(net.trainable_variables)


def test_batch_slicing():
    net = NETS["gru"]
    dist = EncoderDecoder(net, SOURCES, T, temperature=[0.5, 2.0])
    member = dist[1]
    assert member.batch_shape == []
    np.testing.assert_array_equal(member.source, SOURCES[1])
    np.testing.assert_allclose(member.log_prob(ALL[4]), dist.log_prob(ALL[4])[1], rtol=1e-12)
    batched = EncoderDecoder(net, SOURCES[:1], T, params=_perturbed(net, [3], seed=2))
    assert batched.batch_shape == [3] and batched[1:].batch_shape == [2]
    np.testing.assert_allclose(batched[2].log_prob(ALL[4]), batched.log_prob(ALL[4])[2])


# --------------------------------------------------------------------- shapes
CONFIGS = {
    "single_source": (lambda net: {"source": [1, 2]}, []),
    "batched_source": (lambda net: {"source": SOURCES}, [2]),
    "source_3x1_temperature_2": (
        lambda net: {"source": [[[0, 1]], [[1, 1]], [[3, 2]]], "temperature": [0.5, 2.0]},
        [3, 2],
    ),
    "params_2_source_3x1": (
        lambda net: {"source": [[[0, 1]], [[1, 1]], [[3, 2]]], "params": _perturbed(net, [2], 1)},
        [3, 2],
    ),
    "temperature_variable_21": (
        lambda net: {
            "source": SOURCES,
            "temperature": tf.Variable([[0.5], [2.0]], dtype=tf.float64),
        },
        [2, 2],
    ),
}


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_shapes(cell, config):
    net = NETS[cell]
    kwargs, batch = CONFIGS[config]
    dist = EncoderDecoder(net, target_steps=T, **kwargs(net))
    assert dist.batch_shape == batch and dist.event_shape == [T]
    np.testing.assert_array_equal(dist.batch_shape_tensor(), batch)
    for sample_shape in [(), 5, [2, 3]]:
        samples = dist.sample(sample_shape, seed=(1, 2))
        expected = list(np.atleast_1d(sample_shape).astype(int)) if sample_shape != () else []
        assert samples.shape == expected + batch + [T]
        assert samples.dtype == tf.int32
        assert np.all((samples.numpy() >= 0) & (samples.numpy() < V))
        assert dist.log_prob(samples).shape == expected + batch
    # Values with fewer leading dims broadcast against the batch shape.
    assert dist.log_prob(ALL[3]).shape == batch
    values = ALL.reshape((len(ALL),) + (1,) * len(batch) + (T,))
    assert dist.log_prob(values).shape == [len(ALL)] + batch


def test_target_steps_one_and_tf_function_shapes():
    dist = EncoderDecoder(NETS["gru"], SOURCES, 1)
    assert dist.sample(4, seed=(1, 1)).shape == [4, 2, 1]
    np.testing.assert_allclose(
        tf.reduce_logsumexp(dist.log_prob(np.arange(V)[:, None, None]), 0), 0.0, atol=1e-12
    )
    sample = tf.function(lambda n: dist.sample(n, seed=(1, 2)))
    assert sample(tf.constant(3)).shape[1:] == [2, 1]


# -------------------------------------------------------------- normalization
def _total_log_mass(dist) -> np.ndarray:
    values = ALL.reshape((len(ALL),) + (1,) * dist.batch_shape.rank + (T,))
    return tf.reduce_logsumexp(dist.log_prob(values), axis=0).numpy()


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_normalizes_exactly(cell, config):
    net = NETS[cell]
    kwargs, batch = CONFIGS[config]
    dist = EncoderDecoder(net, target_steps=T, **kwargs(net))
    total = _total_log_mass(dist)
    assert total.shape == tuple(batch)
    np.testing.assert_allclose(total, 0.0, atol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_two_layers_normalize_and_are_far_from_uniform(cell):
    dist = EncoderDecoder(_network(cell, num_layers=2, seed=9), SOURCES, T, temperature=0.8)
    np.testing.assert_allclose(_total_log_mass(dist), 0.0, atol=1e-10)
    log_prob = dist.log_prob(ALL[:, None, :]).numpy()
    assert np.all(log_prob.max(0) - log_prob.min(0) > 1.0)


# ------------------------------------------------------------------ sampling
N = 100_000
FAILURE_PROBABILITY = 1e-9


def _frequencies(samples: np.ndarray) -> np.ndarray:
    codes = samples @ (V ** np.arange(T - 1, -1, -1))  # :: [n] + batch
    codes = np.moveaxis(codes, 0, -1).reshape(-1, samples.shape[0])
    counts = np.stack([np.bincount(row, minlength=V**T) for row in codes])
    return (counts / samples.shape[0]).reshape(samples.shape[1:-1] + (V**T,))


def _exact_probs(dist) -> np.ndarray:
    values = ALL.reshape((len(ALL),) + (1,) * dist.batch_shape.rank + (T,))
    return np.moveaxis(np.exp(dist.log_prob(values).numpy().astype(np.float64)), 0, -1)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_sample_frequencies_match_exp_log_prob(cell):
    dist = EncoderDecoder(NETS32[cell], SOURCES, T, temperature=[0.6, 1.5])
    probs = _exact_probs(dist)  # :: [2, 27]
    freqs = _frequencies(dist.sample(N, seed=(2024, 7)).numpy())
    radius = bernstein_radius(probs, N, FAILURE_PROBABILITY / probs.size)
    np.testing.assert_array_less(np.abs(freqs - probs), radius)
    # Power: the two batch members (different source and temperature) are distinguishable.
    assert np.any(np.abs(probs[0] - probs[1]) > radius[0] + radius[1])


# --------------------------------------------------------------------- seeds
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_seeds_are_stateless_and_agree_across_eager_and_tf_function(cell):
    dist = EncoderDecoder(NETS32[cell], SOURCES, T, temperature=0.9)
    first = dist.sample(40, seed=(1, 2)).numpy()
    np.testing.assert_array_equal(first, dist.sample(40, seed=(1, 2)))
    np.testing.assert_array_equal(first, dist.sample(40, seed=np.array([1, 2])))
    assert np.any(first != dist.sample(40, seed=(2, 1)).numpy())
    graph = tf.function(lambda seed: dist.sample(40, seed=seed))
    np.testing.assert_array_equal(first, graph(tf.constant([1, 2])))


@pytest.mark.slow
def test_xla_log_prob_sample_and_decoding():
    dist = EncoderDecoder(NETS32["gru"], SOURCES, T, temperature=0.8)
    log_prob = tf.function(dist.log_prob, jit_compile=True)
    np.testing.assert_allclose(log_prob(ALL[:, None]), dist.log_prob(ALL[:, None]), rtol=1e-5)
    sample = tf.function(lambda seed: dist.sample(7, seed=seed), jit_compile=True)
    first = sample(tf.constant([3, 4])).numpy()
    assert first.shape == (7, 2, T)
    np.testing.assert_array_equal(first, sample(tf.constant([3, 4])))
    greedy = tf.function(lambda: greedy_decode(dist), jit_compile=True)
    np.testing.assert_array_equal(greedy(), greedy_decode(dist))
    beam = tf.function(lambda: beam_search(dist, beam_width=4), jit_compile=True)
    tokens, scores = beam()
    want_tokens, want_scores = beam_search(dist, beam_width=4)
    np.testing.assert_array_equal(tokens, want_tokens)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


# --------------------------------------------------------------- validation
def test_validate_args_errors():
    net = NETS["rnn"]
    dist = EncoderDecoder(net, SOURCES, T, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="target tokens must be < vocab"):
        dist.log_prob([0, 1, V])
    with pytest.raises(tf.errors.InvalidArgumentError, match="target tokens must be >= 0"):
        dist.log_prob([0, -1, 1])
    for floats in ([0.0, 1.5, 1.0], np.array([0.0, 1.5, 1.0]), [0.0, 1.0, 2.0]):
        with pytest.raises(TypeError, match="integer token ids, got dtype float"):
            dist.log_prob(floats)  # refused statically, never truncated
        with pytest.raises(TypeError, match="integer token ids, got dtype float"):
            EncoderDecoder(net, SOURCES, T).log_prob(floats)  # validate_args=False too
    with pytest.raises(ValueError, match="length target_steps=3"):
        dist.log_prob([0, 1])  # a statically wrong length raises even without validate_args
    with pytest.raises(ValueError, match="length target_steps=3"):
        EncoderDecoder(net, SOURCES, T).log_prob([0, 1, 2, 0])
    with pytest.raises(TypeError, match="integers"):
        dist.log_prob(tf.constant([True, False, True]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="source tokens must be < vocab"):
        EncoderDecoder(net, [[0, SRC_V]], T, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be positive"):
        EncoderDecoder(net, SOURCES, T, temperature=-1.0, validate_args=True)
    temperature = tf.Variable(1.0, dtype=tf.float64)
    checked = EncoderDecoder(net, SOURCES, T, temperature=temperature, validate_args=True)
    temperature.assign(-0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be positive"):
        checked.log_prob([0, 1, 2])
    # Without validate_args no assertion is built: an out-of-range source is not checked.
    EncoderDecoder(net, [[0, SRC_V - 1]], T)


def test_constructor_errors():
    net = NETS["lstm"]
    with pytest.raises(ValueError, match="target_steps must be >= 1"):
        EncoderDecoder(net, SOURCES, 0)
    with pytest.raises(TypeError, match="target_steps must be a Python int"):
        EncoderDecoder(net, SOURCES, 2.0)
    with pytest.raises(TypeError, match="source must be integer tokens"):
        EncoderDecoder(net, [[0.5, 1.0]], T)
    with pytest.raises(ValueError, match="got a scalar"):
        EncoderDecoder(net, 3, T)
    with pytest.raises(ValueError, match="at least one token"):
        EncoderDecoder(net, np.zeros((2, 0), np.int32), T)
    with pytest.raises(ValueError, match="same structure"):
        EncoderDecoder(net, SOURCES, T, params={"decoder": net.params["decoder"]})
    bad = _perturbed(net, [2], seed=1)
    bad["decoder"]["output"]["bias"] = bad["decoder"]["output"]["bias"][0]
    with pytest.raises(ValueError, match="same leading batch shape"):
        EncoderDecoder(net, SOURCES, T, params=bad)


# -------------------------------------------------------------- composition
def test_independent_and_sample_composition():
    dist = EncoderDecoder(NETS["gru"], SOURCES, T)
    independent = tfd.Independent(dist, reinterpreted_batch_ndims=1)
    assert independent.batch_shape == [] and independent.event_shape == [2, T]
    value = independent.sample(seed=(4, 4))
    np.testing.assert_allclose(independent.log_prob(value), tf.reduce_sum(dist.log_prob(value)))
    repeated = tfd.Sample(dist, 3)
    assert repeated.sample(seed=(1, 1)).shape == [2, 3, T]


def test_joint_distribution_with_a_latent_temperature():
    net = NETS["lstm"]
    joint = tfd.JointDistributionNamed(
        dict(
            temperature=tfd.LogNormal(tf.constant(0.0, tf.float64), 0.5),
            y=lambda temperature: tfd.Independent(
                EncoderDecoder(net, SOURCES, T, temperature=temperature[..., None]),
                reinterpreted_batch_ndims=1,
            ),
        )
    )
    draw = joint.sample(seed=(5, 6))
    assert draw["y"].shape == [2, T]
    manual = tfd.LogNormal(tf.constant(0.0, tf.float64), 0.5).log_prob(draw["temperature"])
    manual += tf.reduce_sum(
        EncoderDecoder(net, SOURCES, T, temperature=draw["temperature"]).log_prob(draw["y"])
    )
    np.testing.assert_allclose(joint.log_prob(draw), manual, rtol=1e-12)
    # Batched latent (e.g. MCMC chains): the joint log_prob is one value per chain.
    chains = tf.constant([0.5, 1.0, 2.0], tf.float64)
    assert joint.log_prob(temperature=chains, y=draw["y"]).shape == [3]


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_gradients_reach_every_variable(cell):
    net = _network(cell, num_layers=2, seed=12, dtype=tf.float32)
    temperature = tf.Variable(0.9)
    dist = EncoderDecoder(net, SOURCES, T, temperature=temperature)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(dist.log_prob(ALL[:5, None]))
    variables = dist.trainable_variables
    assert len(variables) == len(net.trainable_variables) + 1
    grads = tape.gradient(loss, variables)
    for variable, grad in zip(variables, grads, strict=True):
        assert grad is not None and np.any(np.asarray(grad) != 0.0), variable.name


# ----------------------------------------------------------------- decoding
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_beam_search_enumerates_exactly_when_wide_enough(cell):
    net = _network(cell, num_layers=2, seed=20)
    dist = EncoderDecoder(net, SOURCES, T, temperature=[0.8, 1.2])
    tokens, log_probs = beam_search(dist, beam_width=V**T)
    assert tokens.shape == [2, V**T, T] and log_probs.shape == [2, V**T]
    exact = dist.log_prob(ALL[:, None]).numpy()  # :: [27, 2]
    for b in range(2):
        np.testing.assert_array_equal(tokens[b, 0], ALL[np.argmax(exact[:, b])])
        np.testing.assert_allclose(log_probs[b], np.sort(exact[:, b])[::-1], rtol=1e-10)
        assert len({tuple(row) for row in tokens[b].numpy()}) == V**T  # all distinct
    # The scores are the distribution's log_prob of the returned sequences.
    rescored = dist.log_prob(tf.transpose(tokens, [1, 0, 2]))  # :: [K, 2]
    np.testing.assert_allclose(tf.transpose(rescored), log_probs, rtol=1e-10)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_narrow_beam_scores_are_log_probs_and_sorted(cell):
    dist = EncoderDecoder(NETS32[cell], [[[1, 2]], [[3, 0]]], T, params=None)  # batch [2, 1]
    tokens, log_probs = beam_search(dist, beam_width=4)
    assert tokens.shape == [2, 1, 4, T]
    rescored = dist.log_prob(tf.transpose(tokens, [2, 0, 1, 3]))  # :: [4, 2, 1]
    np.testing.assert_allclose(tf.transpose(rescored, [1, 2, 0]), log_probs, rtol=1e-5)
    assert np.all(np.diff(log_probs.numpy(), axis=-1) <= 0.0)
    greedy = greedy_decode(dist)
    one_tokens, one_scores = beam_search(dist, beam_width=1)
    np.testing.assert_array_equal(greedy, one_tokens[..., 0, :])
    np.testing.assert_allclose(dist.log_prob(greedy), one_scores[..., 0], rtol=1e-5)


def test_decoding_from_a_network_and_surplus_beams():
    net = NETS["rnn"]
    tokens = greedy_decode(net, SOURCES, T)
    np.testing.assert_array_equal(tokens, greedy_decode(EncoderDecoder(net, SOURCES, T)))
    wide_tokens, wide_scores = beam_search(net, SOURCES[0], 2, beam_width=V**2 + 2)
    assert wide_tokens.shape == [V**2 + 2, 2]
    assert np.all(np.isfinite(wide_scores[: V**2])) and np.all(wide_scores[V**2 :] == -np.inf)
    np.testing.assert_allclose(tf.reduce_logsumexp(wide_scores), 0.0, atol=1e-10)
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(net, SOURCES, T, beam_width=0)
    with pytest.raises(ValueError, match="needs source and target_steps"):
        greedy_decode(net, SOURCES)
    with pytest.raises(ValueError, match="only with a network"):
        greedy_decode(EncoderDecoder(net, SOURCES, T), SOURCES, T)


def test_batched_params_decoding():
    net = NETS["lstm"]
    dist = EncoderDecoder(net, SOURCES, T, params=_perturbed(net, [3, 1], seed=8))
    tokens, log_probs = beam_search(dist, beam_width=V**T)
    exact = dist.log_prob(ALL[:, None, None]).numpy()  # :: [27, 3, 2]
    np.testing.assert_array_equal(tokens[..., 0, :], ALL[np.argmax(exact, 0)])
    np.testing.assert_allclose(log_probs[..., 0], exact.max(0), rtol=1e-10)
    assert greedy_decode(dist).shape == [3, 2, T]
