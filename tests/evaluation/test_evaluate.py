"""`evaluate` is exact: windows and stream against `LSTMAutoregressive` and NumPy."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from probseq import LSTMAutoregressive
from probseq.evaluation import EvaluationResult, evaluate, log_mean_exp

T = 8  # num_steps; the 53-token text holds 6 windows and drops 5 characters


@pytest.mark.parametrize("jit_compile", [False, True])
def test_windows_match_log_prob_and_numpy(net, ids, jit_compile, numpy_log_prob):
    result = evaluate(net, ids, num_steps=T, batch_size=4, jit_compile=jit_compile)
    windows = ids[:48].reshape(6, T)
    expected = LSTMAutoregressive(net, T).log_prob(windows).numpy()
    brute = [numpy_log_prob(net.params, w) for w in windows]
    np.testing.assert_allclose(result.window_log_prob_nats, expected, rtol=1e-5)
    np.testing.assert_allclose(result.window_log_prob_nats, brute, rtol=1e-5)
    assert isinstance(result, EvaluationResult)
    assert (result.mode, result.num_windows, result.num_chars) == ("windows", 6, 48)
    assert result.num_dropped_chars == 5 and result.num_steps == T
    assert result.nll_nats_per_window == pytest.approx(-np.mean(brute), rel=1e-5)
    assert result.nll_nats_per_char == pytest.approx(-np.sum(brute) / 48, rel=1e-5)
    assert result.total_log_prob_nats == pytest.approx(np.sum(brute), rel=1e-5)
    assert result.bits_per_char == pytest.approx(result.nll_nats_per_char / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.nll_nats_per_char))
    assert result.num_draws is None and result.window_log_prob_per_draw_nats is None


@pytest.mark.parametrize("jit_compile", [False, True])
def test_stream_is_one_long_sequence(net, ids, jit_compile, numpy_log_prob):
    result = evaluate(net, ids, num_steps=T, mode="stream", chunk_size=16, jit_compile=jit_compile)
    expected = LSTMAutoregressive(net, ids.size).log_prob(ids).numpy()
    assert result.total_log_prob_nats == pytest.approx(expected, rel=1e-5)
    assert result.total_log_prob_nats == pytest.approx(numpy_log_prob(net.params, ids), rel=1e-5)
    assert (result.mode, result.num_chars, result.num_dropped_chars) == ("stream", 53, 0)
    assert result.num_windows is None and result.window_log_prob_nats is None
    assert result.num_streams == 1
    assert result.nll_nats_per_char == pytest.approx(-expected / 53, rel=1e-5)
    assert result.nll_nats_per_window == pytest.approx(result.nll_nats_per_char * T)


def test_stream_independent_of_chunk_size(net, ids):
    totals = [
        evaluate(
            net, ids, num_steps=T, mode="stream", chunk_size=size, jit_compile=False
        ).total_log_prob_nats
        for size in (1, 5, 13, 52, 1000)
    ]
    np.testing.assert_allclose(totals, totals[0], rtol=1e-4)


@pytest.mark.parametrize("chunk_size", [6, None])
def test_stream_with_several_streams_scores_independent_pieces(
    net, ids, numpy_log_prob, chunk_size
):
    result = evaluate(
        net,
        ids,
        num_steps=T,
        mode="stream",
        num_streams=3,
        chunk_size=chunk_size,
        jit_compile=False,
    )
    pieces = np.array_split(ids, 3)
    expected = sum(numpy_log_prob(net.params, piece) for piece in pieces)
    assert result.total_log_prob_nats == pytest.approx(expected, rel=1e-5)
    assert result.num_streams == 3 and result.num_chars == 53


def test_padding_of_last_batch_does_not_change_results(net, ids):
    results = [
        evaluate(net, ids, num_steps=T, batch_size=size, jit_compile=False).window_log_prob_nats
        for size in (1, 4, 6, 100)
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-5)


def test_temperature_divides_logits(net, ids, numpy_log_prob):
    dist = LSTMAutoregressive(net, T, temperature=0.7)
    from_dist = evaluate(dist, ids, jit_compile=False)
    from_arg = evaluate(net, ids, num_steps=T, temperature=0.7, jit_compile=False)
    expected = dist.log_prob(ids[:48].reshape(6, T)).numpy()
    np.testing.assert_allclose(from_dist.window_log_prob_nats, expected, rtol=1e-5)
    np.testing.assert_allclose(from_arg.window_log_prob_nats, expected, rtol=1e-5)
    assert from_dist.num_steps == T  # taken from the distribution
    assert from_dist.temperature == pytest.approx(0.7)
    stream = evaluate(net, ids, num_steps=T, mode="stream", temperature=0.7, jit_compile=False)
    brute = numpy_log_prob(net.params, ids, temperature=0.7)
    assert stream.total_log_prob_nats == pytest.approx(brute, rel=1e-5)


def test_params_dict_model_and_explicit_params(net, ids, draws, numpy_log_prob):
    from_dict = evaluate(net.params, ids, num_steps=T, jit_compile=False)
    from_net = evaluate(net, ids, num_steps=T, jit_compile=False)
    np.testing.assert_allclose(from_dict.window_log_prob_nats, from_net.window_log_prob_nats)
    first = tf.nest.map_structure(lambda leaf: leaf[0], draws)
    override = evaluate(net, ids, num_steps=T, params=first, jit_compile=False)
    brute = [numpy_log_prob(first, w) for w in ids[:48].reshape(6, T)]
    np.testing.assert_allclose(override.window_log_prob_nats, brute, rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_windows_with_draws_equal_loop_over_draws(net, ids, draws, jit_compile):
    result = evaluate(net, ids, num_steps=T, params=draws, batch_size=4, jit_compile=jit_compile)
    loop = np.stack(
        [
            evaluate(
                net,
                ids,
                num_steps=T,
                params=tf.nest.map_structure(lambda leaf, s=s: leaf[s], draws),
                jit_compile=False,
            ).window_log_prob_nats
            for s in range(3)
        ]
    )
    assert result.num_draws == 3
    assert result.window_log_prob_per_draw_nats.shape == (3, 6)
    np.testing.assert_allclose(result.window_log_prob_per_draw_nats, loop, rtol=1e-5)
    predictive = log_mean_exp(loop, axis=0)
    np.testing.assert_allclose(result.window_log_prob_nats, predictive, rtol=1e-5)
    assert result.nll_nats_per_window == pytest.approx(-predictive.mean(), rel=1e-5)
    np.testing.assert_allclose(result.total_log_prob_per_draw_nats, loop.sum(1), rtol=1e-5)


def test_stream_with_draws_equal_loop_over_draws(net, ids, draws, numpy_log_prob):
    result = evaluate(net, ids, num_steps=T, mode="stream", params=draws, chunk_size=16)
    loop = np.array(
        [numpy_log_prob(tf.nest.map_structure(lambda x, s=s: x[s], draws), ids) for s in range(3)]
    )
    np.testing.assert_allclose(result.total_log_prob_per_draw_nats, loop, rtol=1e-5)
    assert result.total_log_prob_nats == pytest.approx(log_mean_exp(loop), rel=1e-5)
    assert result.nll_nats_per_char == pytest.approx(-log_mean_exp(loop) / 53, rel=1e-5)
    assert result.num_draws == 3


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_integer_dtypes_lists_and_tensors_agree(net, ids, dtype):
    reference = evaluate(net, ids, num_steps=T, jit_compile=False).total_log_prob_nats
    for text in (ids.astype(dtype), tf.constant(ids.astype(dtype))):
        value = evaluate(net, text, num_steps=T, jit_compile=False).total_log_prob_nats
        assert value == pytest.approx(reference, rel=1e-6)
    as_list = evaluate(net, ids.tolist(), num_steps=T, jit_compile=False).total_log_prob_nats
    assert as_list == pytest.approx(reference, rel=1e-6)


def test_single_step_windows(net, ids, numpy_log_prob):
    result = evaluate(net, ids, num_steps=1, jit_compile=False)
    brute = [numpy_log_prob(net.params, [token]) for token in ids]
    np.testing.assert_allclose(result.window_log_prob_nats, brute, rtol=1e-5)


@pytest.mark.parametrize("mode", ["windows", "stream"])
def test_progress_reports_monotone_and_complete(net, ids, mode):
    calls = []
    result = evaluate(
        net,
        ids,
        num_steps=T,
        mode=mode,
        batch_size=4,
        chunk_size=10,
        progress=lambda done, total: calls.append((done, total)),
        jit_compile=False,
    )
    done = [d for d, _ in calls]
    assert len(calls) == (2 if mode == "windows" else 6)
    assert done == sorted(done) and done[-1] == result.num_chars
    assert {total for _, total in calls} == {result.num_chars}


def test_as_dict_is_json(net, ids, draws):
    result = evaluate(net, ids, num_steps=T, params=draws, jit_compile=False)
    summary = json.loads(json.dumps(result.as_dict()))
    assert summary["nll_nats_per_char"] == pytest.approx(result.nll_nats_per_char)
    assert "window_log_prob_nats" not in summary
    assert len(summary["total_log_prob_per_draw_nats"]) == 3
    full = json.loads(json.dumps(result.as_dict(include_pointwise=True)))
    assert np.shape(full["window_log_prob_per_draw_nats"]) == (3, 6)
    with pytest.raises(ValueError):
        result.window_log_prob_nats[0] = 0.0  # read-only
