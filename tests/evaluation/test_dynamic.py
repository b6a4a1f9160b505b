"""Dynamic evaluation: each segment scored before the model learns from it (issue 14)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probseq import LSTMNetwork
from probseq.evaluation import DynamicSettings, dynamic_evaluate, evaluate


@pytest.fixture(scope="module")
def network():
    return LSTMNetwork(vocab_size=8, hidden_size=16, num_layers=2, seed=4)


def _uniform_text(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 8, size=n)


@pytest.mark.parametrize("num_streams", [1, 3])
def test_without_learning_it_is_the_stream_log_likelihood(network, num_streams):
    ids = _uniform_text(700)
    settings = DynamicSettings(
        segment_length=40, learning_rate=0.0, num_streams=num_streams, method="sgd"
    )
    dynamic = dynamic_evaluate(network, ids, settings)
    stream = evaluate(network, ids, mode="stream", num_streams=num_streams)
    assert dynamic.mode == "dynamic" and dynamic.num_chars == ids.size
    assert dynamic.total_log_prob_nats == pytest.approx(stream.total_log_prob_nats, rel=1e-5)
    assert dynamic.dynamic == dict(
        segment_length=40, learning_rate=0.0, decay=0.001, num_streams=num_streams,
        method="sgd", rms_segments=200,
    )  # fmt: skip
    # the same through evaluate(mode="dynamic")
    again = evaluate(network, ids, mode="dynamic", dynamic=settings)
    assert again.total_log_prob_nats == pytest.approx(dynamic.total_log_prob_nats, rel=1e-6)


def test_every_character_is_scored_before_the_model_learns_from_it(network):
    """On i.i.d. uniform text over V symbols no sequential predictor beats log2 V bits
    per char in expectation, however fast it learns; one that learned each segment
    before scoring it (the leak) does, by far. The honest pass, with the same aggressive
    step, stays above log2 V minus sampling noise."""
    ids = _uniform_text(3000, seed=1)
    settings = DynamicSettings(segment_length=10, learning_rate=5.0, method="sgd")
    honest = dynamic_evaluate(network, ids, settings)
    leaky = dynamic_evaluate(network, ids, settings, _learn_first=True)
    floor = math.log2(8)
    assert honest.bits_per_char > floor - 0.05  # measured 3.28
    assert leaky.bits_per_char < floor - 0.25  # measured 2.61


def test_it_learns_what_the_text_repeats_and_leaves_the_model_alone(network):
    motif = np.random.default_rng(2).integers(0, 8, size=23)
    ids = np.tile(motif, 60)
    before = [v.numpy().copy() for v in network.trainable_variables]
    static = evaluate(network, ids, mode="stream")
    dynamic = dynamic_evaluate(
        network, ids, DynamicSettings(segment_length=25, learning_rate=4.0, method="sgd")
    )
    assert dynamic.bits_per_char < static.bits_per_char - 0.5  # measured 2.24 vs 2.97
    for old, variable in zip(before, network.trainable_variables, strict=True):
        np.testing.assert_array_equal(old, variable.numpy())
    # the pull towards the trained weights limits how far it adapts
    pulled = dynamic_evaluate(
        network, ids, DynamicSettings(segment_length=25, learning_rate=4.0, decay=0.5, method="sgd")
    )
    assert dynamic.bits_per_char < pulled.bits_per_char < static.bits_per_char


def test_bad_settings_and_inputs_are_refused(network):
    ids = _uniform_text(100)
    with pytest.raises(ValueError, match="learning_rate must be a number >= 0"):
        DynamicSettings(learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\]"):
        DynamicSettings(decay=2.0)
    with pytest.raises(ValueError, match="segment_length"):
        DynamicSettings(segment_length=0)
    with pytest.raises(TypeError, match="DynamicSettings"):
        dynamic_evaluate(network, ids, {"learning_rate": 0.1})
    with pytest.raises(ValueError, match="applies to mode='dynamic' only"):
        evaluate(network, ids, mode="stream", dynamic=DynamicSettings(method="sgd"))
    with pytest.raises(ValueError, match="not context / num_streams"):
        evaluate(network, ids, mode="dynamic", num_streams=2)
    draws = {
        key: {name: np.stack([v.numpy()] * 2) for name, v in layer.items()}
        for key, layer in network.params.items()
    }
    with pytest.raises(ValueError, match="adapts one set of weights"):
        dynamic_evaluate(network, ids, DynamicSettings(method="sgd"), params=draws)
    with pytest.raises(ValueError, match=r"ids must be in \[0, 8\)"):
        dynamic_evaluate(network, np.array([1, 2, 9]), DynamicSettings(method="sgd"))


def test_rms_steps_scale_by_the_training_gradients(network):
    """method="rms": lr 0 is still the stream likelihood; it needs training text; with a
    step it learns a repeated motif, and scores before it learns (uniform text)."""
    train = _uniform_text(3000, seed=5)
    ids = np.tile(np.random.default_rng(2).integers(0, 8, size=23), 40)
    zero = DynamicSettings(segment_length=25, learning_rate=0.0, method="rms", rms_segments=20)
    still = dynamic_evaluate(network, ids, zero, train_ids=train)
    stream = evaluate(network, ids, mode="stream")
    assert still.total_log_prob_nats == pytest.approx(stream.total_log_prob_nats, rel=1e-5)
    with pytest.raises(ValueError, match="needs train_ids"):
        dynamic_evaluate(network, ids, zero)
    with pytest.raises(ValueError, match="method must be 'sgd' or 'rms'"):
        DynamicSettings(method="adam")
    settings = DynamicSettings(
        segment_length=25, learning_rate=0.01, decay=0.01, method="rms", rms_segments=20
    )
    learned = dynamic_evaluate(network, ids, settings, train_ids=train)
    assert learned.bits_per_char < stream.bits_per_char - 0.3  # measured 2.56 vs 2.97
    assert learned.dynamic["method"] == "rms"
    honest = dynamic_evaluate(network, _uniform_text(2000, seed=3), settings, train_ids=train)
    assert honest.bits_per_char > math.log2(8) - 0.05
