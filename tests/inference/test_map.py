"""fit_map: the MAP objective, maximum likelihood, callbacks, clipping and strategies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.inference import Callback, GaussianPrior, fit_map

tfd = tfp.distributions


def _dataset(vocab: int, steps: int, batch: int, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, vocab, size=(batch * 8, steps)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch).repeat()


def test_gaussian_prior_log_prob_matches_tfp():
    variables = [tf.Variable([[1.0, -2.0]]), tf.Variable([0.5])]
    expected = sum(float(tf.reduce_sum(tfd.Normal(0.0, 2.0).log_prob(v))) for v in variables)
    assert float(GaussianPrior(2.0).log_prob(variables)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="positive"):
        GaussianPrior(0.0)


def test_first_step_loss_is_the_map_objective_per_example():
    net = probseq.LSTMNetwork(5, 8, seed=1)
    dist = probseq.LSTMAutoregressive(net, 6)
    batch = next(iter(_dataset(5, 6, 4)))
    n = 50
    expected_nll = -float(tf.reduce_mean(dist.log_prob(batch)))
    expected = expected_nll - float(GaussianPrior(0.7).log_prob(net.trainable_variables)) / n
    result = fit_map(dist, [batch], num_examples=n, num_steps=1, prior=GaussianPrior(0.7))
    assert result.trace["nll"][0] == pytest.approx(expected_nll, rel=1e-5)
    assert result.trace["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_maximum_likelihood_decreases_the_loss_and_reports_the_trace():
    net = probseq.LSTMNetwork(4, 16, seed=2)
    dist = probseq.LSTMAutoregressive(net, 8)
    # A deterministic cyclic sequence is easy to learn: the NLL must fall sharply.
    data = np.tile(np.arange(4, dtype=np.int32), (16, 2))
    ds = tf.data.Dataset.from_tensor_slices(data).batch(16).repeat()
    result = fit_map(dist, ds, num_examples=16, num_steps=60, prior=None, learning_rate=0.05)
    assert result.steps_run == 60 and result.final_step == 60
    assert set(result.trace) >= {"step", "loss", "nll", "grad_norm", "learning_rate"}
    assert result.trace["nll"][-1] < 0.3 * result.trace["nll"][0]
    np.testing.assert_array_equal(result.trace["step"], np.arange(1, 61))


def test_clipping_callbacks_and_evaluation_cadence():
    net = probseq.LSTMNetwork(5, 8, seed=3)
    dist = probseq.LSTMAutoregressive(net, 6)
    seen, evaluated = [], []

    class Recorder(Callback):
        def on_step(self, info):
            seen.append(info.step)
            return info.step == 17  # ask to stop after global step 17

        def on_evaluation(self, step, metrics):
            evaluated.append((step, metrics["value"]))

    before = [v.numpy().copy() for v in net.trainable_variables]
    result = fit_map(
        dist,
        _dataset(5, 6, 4),
        num_examples=100,
        num_steps=50,
        clip_norm=1e-3,
        learning_rate=1.0,
        callbacks=[Recorder()],
        eval_fn=lambda: {"value": 1.0},
        eval_every=3,
        initial_step=10,
    )
    assert seen == list(range(11, 18)) and result.stopped_early
    assert [s for s, _ in evaluated] == [12, 15, 17]
    assert result.final_step == 17
    after = [v.numpy() for v in net.trainable_variables]
    # Adam's step size is bounded by the learning rate regardless of clipping; the
    # clipped gradient norm is reported before clipping.
    assert all(np.isfinite(a).all() for a in after)
    assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))
    assert np.all(result.trace["grad_norm"] > 1e-3)


def test_fit_map_refuses_a_distribution_without_variables():
    net = probseq.LSTMNetwork(3, 4, seed=0)
    params = tf.nest.map_structure(tf.convert_to_tensor, net.params)

    class Frozen(tf.Module):
        vocab_size, hidden_size, num_layers, dtype = 3, 4, 1, tf.float32

        def __init__(self):
            super().__init__()
            self.params = params

    dist = probseq.LSTMAutoregressive(Frozen(), 4, params=params)
    with pytest.raises(ValueError, match="no trainable variables"):
        fit_map(dist, [np.zeros([2, 4], np.int32)], num_examples=2, num_steps=1)


def test_fit_map_raises_on_non_finite_loss():
    net = probseq.LSTMNetwork(3, 4, seed=0)
    temperature = tf.Variable(0.0)  # logits / 0 -> non-finite loss
    dist = probseq.LSTMAutoregressive(net, 4, temperature=temperature)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit_map(dist, [np.zeros([2, 4], np.int32)], num_examples=2, num_steps=1)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    import probseq
    from probseq.inference import fit_map

    rng = np.random.default_rng(0)
    data = rng.integers(0, 6, size=(64, 10)).astype(np.int32)
    def dataset():
        return tf.data.Dataset.from_tensor_slices(data).batch(16).repeat()

    def run(strategy):
        with (strategy.scope() if strategy else tf.init_scope()):
            net = probseq.LSTMNetwork(6, 16, seed=7)
        dist = probseq.LSTMAutoregressive(net, 10)
        result = fit_map(dist, dataset(), num_examples=64, num_steps=15, clip_norm=5.0,
                         learning_rate=0.01, strategy=strategy)
        return result.trace["loss"].tolist()

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "single": run(None), "mirrored": run(strategy)}))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_follows_the_single_device_trajectory():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    single, mirrored = np.array(result["single"]), np.array(result["mirrored"])
    assert single[-1] < single[0]  # it trains
    # Same init, same batches: only the summation order differs between the two.
    np.testing.assert_allclose(mirrored, single, rtol=2e-3)
