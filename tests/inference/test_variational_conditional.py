"""`fit_variational(log_likelihood_fn=...)`: conditional and variable-length models fit by
VI like by MAP (issue 17's first step; the echo task could not be fitted variationally)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import probseq
from probseq.inference import fit_variational

V, S, T = 6, 4, 2


def test_an_encoder_decoder_fits_variationally():
    rng = np.random.default_rng(0)
    sources = rng.integers(0, V, size=(256, S)).astype(np.int32)
    targets = sources[:, :T]  # echo the first two tokens
    net = probseq.Seq2SeqNetwork(V, V, hidden_size=32, seed=1)
    data = tf.data.Dataset.from_tensor_slices((sources, targets)).repeat().batch(32)

    def log_likelihood(batch, params):
        source, target = batch
        # Draws on the params' leading [K] dim; sources [B, 1, S]: batch shape [B, K].
        dist = probseq.EncoderDecoder(net, source[:, None, :], T, params=params)
        return tf.transpose(dist.log_prob(target[:, None, :]))  # :: [K, B]

    template = probseq.EncoderDecoder(net, sources[:1], T)
    before = float(tf.reduce_mean(probseq.EncoderDecoder(net, sources, T).log_prob(targets)))
    result = fit_variational(
        template,
        data,
        num_examples=256,
        num_steps=150,
        num_draws_per_step=2,
        learning_rate=1e-2,
        prior=probseq.inference.GaussianPrior(1.0),
        log_likelihood_fn=log_likelihood,
        seed=3,
    )
    mean = result.surrogate.mean()
    after = float(
        tf.reduce_mean(probseq.EncoderDecoder(net, sources, T, params=mean).log_prob(targets))
    )
    assert after > before + 1.0  # nats per target pair: it learned to echo
    assert np.all(np.isfinite(result.trace["elbo"]))


def test_variable_length_batches_fit_variationally():
    net = probseq.LSTMNetwork(5, 8, seed=2)
    rows = [[1, 2, 3], [4], [2, 2, 1, 1], [3, 1]] * 16
    data = probseq.data.bucketed_batches(rows, 8, seed=0)

    def log_likelihood(batch, params):
        lines = probseq.LSTMAutoregressive(
            net, 6, eos=0, lengths=batch["lengths"][:, None], params=params
        )  # batch shape [B, K]
        return tf.transpose(lines.log_prob(batch["tokens"][:, None, :]))  # :: [K, B]

    result = fit_variational(
        probseq.LSTMAutoregressive(net, 6, eos=0),
        data,
        num_examples=len(rows),
        num_steps=60,
        learning_rate=2e-2,
        log_likelihood_fn=log_likelihood,
        seed=1,
    )
    nll = result.trace["nll"]
    assert np.mean(nll[-10:]) < np.mean(nll[:10]) - 1.0
