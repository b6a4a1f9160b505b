"""Inference over other latents with the network held fixed: `network.frozen()`.

Regression (issue 11, defect 3): `tfp.vi.fit_surrogate_posterior` over a latent
temperature trains every variable the loss reads, so with the network itself in the
model it silently trained the LSTM too and reported a wrong temperature posterior
(0.21 +- 0.07 for data drawn at 0.5, where HMC gives ~0.47).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq

tfd, tfb = tfp.distributions, tfp.bijectors

V, H, LENGTH, NUM_SEQUENCES, TRUE_TEMPERATURE = 6, 16, 24, 6, 0.5


def _network() -> probseq.LSTMNetwork:
    net = probseq.LSTMNetwork(V, H, seed=(3, 0))
    for i, variable in enumerate(net.trainable_variables):
        noise = tf.random.stateless_normal(variable.shape, seed=(11, i), stddev=0.8)
        variable.assign_add(noise)
    return net


def _model(net):
    def text(temperature):
        dist = probseq.LSTMAutoregressive(net, LENGTH, temperature=temperature)
        return tfd.Sample(dist, NUM_SEQUENCES)

    return tfd.JointDistributionNamed(dict(temperature=tfd.LogNormal(0.0, 0.5), text=text))


def test_frozen_network_has_the_same_distribution_and_no_variables():
    net = _network()
    frozen = net.frozen()
    assert frozen.trainable_variables == () and "frozen" in repr(frozen)
    x = probseq.LSTMAutoregressive(net, LENGTH).sample(4, seed=(1, 2))
    np.testing.assert_allclose(
        probseq.LSTMAutoregressive(frozen, LENGTH).log_prob(x),
        probseq.LSTMAutoregressive(net, LENGTH).log_prob(x),
        rtol=1e-6,
    )
    assert probseq.LSTMAutoregressive(frozen, LENGTH).trainable_variables == ()
    seq2seq = probseq.Seq2SeqNetwork(5, 5, hidden_size=4, seed=1).frozen()
    assert seq2seq.trainable_variables == () and seq2seq.vocab_size == 5


def test_fit_map_refuses_a_frozen_network():
    frozen = _network().frozen()
    data = tf.data.Dataset.from_tensors(tf.zeros([2, LENGTH], tf.int32)).repeat()
    with pytest.raises(ValueError, match="no trainable variables"):
        probseq.inference.fit_map(
            probseq.LSTMAutoregressive(frozen, LENGTH), data, num_examples=2, num_steps=1
        )


def _hmc_temperature_draws(target_log_prob) -> np.ndarray:
    kernel = tfp.mcmc.SimpleStepSizeAdaptation(
        tfp.mcmc.TransformedTransitionKernel(
            tfp.mcmc.HamiltonianMonteCarlo(target_log_prob, step_size=0.3, num_leapfrog_steps=3),
            bijector=tfb.Exp(),
        ),
        num_adaptation_steps=120,
    )

    @tf.function
    def run():
        return tfp.mcmc.sample_chain(
            400,
            current_state=tf.constant([0.3, 0.9]),
            kernel=kernel,
            num_burnin_steps=150,
            trace_fn=None,
            seed=(7, 8),
        )

    return run().numpy().ravel()


@pytest.mark.slow
def test_variational_temperature_with_frozen_network_agrees_with_hmc():
    net = _network()
    frozen = net.frozen()
    before = [v.numpy().copy() for v in net.trainable_variables]
    observed = probseq.LSTMAutoregressive(frozen, LENGTH, temperature=TRUE_TEMPERATURE)
    observed = observed.sample(NUM_SEQUENCES, seed=(5, 6))

    def target_log_prob(temperature):
        return _model(frozen).log_prob(temperature=temperature, text=observed)

    hmc = _hmc_temperature_draws(target_log_prob)

    # The README's idiom: a LogNormal surrogate, TFP's own fitting routine.
    loc = tf.Variable(0.0)
    scale = tfp.util.TransformedVariable(0.2, tfb.Softplus())
    surrogate = tfd.LogNormal(loc, scale)
    tfp.vi.fit_surrogate_posterior(
        target_log_prob,
        surrogate,
        optimizer=tf.optimizers.Adam(0.05),
        num_steps=400,
        sample_size=16,
        seed=(9, 9),
        jit_compile=False,
    )
    vi = surrogate.sample(4000, seed=(3, 3)).numpy()
    # Monte Carlo error of the HMC mean is ~sd / sqrt(ESS) < 0.02; VI's mean-field
    # LogNormal matches a one-dimensional posterior closely.
    assert abs(vi.mean() - hmc.mean()) < 0.05, (vi.mean(), hmc.mean())
    assert vi.std() == pytest.approx(hmc.std(), rel=0.35)
    assert abs(hmc.mean() - TRUE_TEMPERATURE) < 3 * hmc.std()
    for old, variable in zip(before, net.trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), old)  # the network was not trained
