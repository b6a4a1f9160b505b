"""bf16 matmuls (issue 15): accuracy against fp32, fp32 gradients, the `auto` choice."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import tensorflow as tf

import probseq.machine as machine
from probseq import LSTMNetwork
from probseq.evaluation import evaluate
from probseq.nn import (
    cell_initial_state,
    cell_logits,
    get_cell,
    precision_dtype,
    reduced_precision_params,
)


@pytest.fixture(scope="module")
def network():
    return LSTMNetwork(vocab_size=40, hidden_size=64, num_layers=2, seed=3)


def test_bf16_logits_track_fp32_and_gradients_stay_fp32(network):
    tokens = np.random.default_rng(0).integers(0, 40, size=(6, 30))
    state = cell_initial_state(network.params, [6], cell=get_cell("lstm"))
    exact, _ = cell_logits(network.params, tokens, state)
    with tf.GradientTape() as tape:
        fast, final = cell_logits(network.params, tokens, state, compute_dtype="bf16")
        loss = tf.reduce_mean(fast**2)
    assert fast.dtype == tf.float32 and final[0].c.dtype == tf.float32
    error = float(tf.reduce_max(tf.abs(fast - exact)))
    assert 0 < error < 0.02  # bf16 rounding is there, and small
    grads = tape.gradient(loss, network.trainable_variables)
    assert all(g is not None and g.dtype == tf.float32 for g in grads)
    # pre-cast kernels (inference) give the same numbers as casting inside the loop
    cast = reduced_precision_params(network.params, "bf16")
    assert cast["layer_1"]["recurrent_kernel"].dtype == tf.bfloat16
    assert cast["layer_0"]["input_kernel"].dtype == tf.float32  # the token table
    same, _ = cell_logits(cast, tokens, state, compute_dtype="bf16")
    np.testing.assert_allclose(same.numpy(), fast.numpy(), atol=1e-6)


def test_bf16_gradients_track_fp32_with_the_kernel_cast_once(network, monkeypatch):
    """Training in bf16 casts each recurrent kernel once before the time loop and sums its
    gradient over the steps in fp32 (`_low_precision_product`): every gradient stays
        close to the fp32 one, and equals TensorFlow's own gradient of casting the kernel
    inside the loop (the same bf16 products, summed in the same order)."""
    from probseq.nn import cells

    tokens = np.random.default_rng(2).integers(0, 40, size=(8, 40))
    state = cell_initial_state(network.params, [8], cell=get_cell("lstm"))

    def gradients(**options):
        with tf.GradientTape() as tape:
            logits, _ = cell_logits(network.params, tokens, state, **options)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tokens, logits=logits))  # fmt: skip
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, network.trainable_variables)]

    exact = gradients()
    fast = gradients(compute_dtype="bf16")
    names = [v.name for v in network.trainable_variables]
    for name, a, b in zip(names, fast, exact, strict=True):
        assert a.dtype == tf.float32
        relative = float(tf.norm(a - b) / tf.norm(b))
        assert 0 < relative < 0.02, (name, relative)  # measured 2e-4 to 5e-3
    # the reference: the kernel cast inside the loop, differentiated by TensorFlow
    monkeypatch.setattr(cells, "_low_precision_product", lambda kernel, compute: (
        functools.partial(cells._matmul, kernel=kernel, k=0, compute=compute)))  # fmt: skip
    reference = gradients(compute_dtype="bf16")
    for name, a, b in zip(names, fast, reference, strict=True):
        assert float(tf.norm(a - b) / tf.norm(b)) < 1e-5, name  # measured: equal


def test_bf16_log_prob_is_within_1e_2_nats_per_char_of_fp32(network):
    ids = np.random.default_rng(1).integers(0, 40, size=6000)
    for mode in ("windows", "stream"):
        exact = evaluate(network, ids, num_steps=50, mode=mode)
        fast = evaluate(network, ids, num_steps=50, mode=mode, precision="bf16")
        assert abs(fast.nll_nats_per_char - exact.nll_nats_per_char) < 1e-2
        assert fast.nll_nats_per_char != exact.nll_nats_per_char
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        evaluate(network, ids, precision="fp16")
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        precision_dtype("half")


def test_auto_picks_bf16_only_with_the_instructions_and_a_measured_gain(tmp_path, monkeypatch):
    monkeypatch.setenv("PROBSEQ_CACHE_DIR", str(tmp_path))
    calls = []

    def probe(speedup):
        def fake():
            calls.append(speedup)
            return {"speedup": speedup, "shapes": []}

        return fake

    def cpu(flags):
        return lambda: {"cpu_model": "test cpu", "cpu_flags": flags, "logical_cpus": 2}

    monkeypatch.setattr(machine, "cpu_info", cpu(["avx2"]))
    monkeypatch.setattr(machine, "bf16_matmul_speedup", probe(3.0))
    assert machine.choose_precision("auto")[0] == "fp32" and not calls  # no instructions
    assert machine.choose_precision("bf16")[1].endswith("(emulated, slow)")
    assert machine.choose_precision("fp32") == ("fp32", "requested")
    monkeypatch.setattr(machine, "cpu_info", cpu(["avx512_bf16"]))
    monkeypatch.setattr(machine, "bf16_matmul_speedup", probe(0.6))
    chosen, reason = machine.choose_precision("auto")
    assert chosen == "fp32" and "0.60x" in reason
    # cached per machine: a second call does not measure again
    monkeypatch.setattr(machine, "bf16_matmul_speedup", probe(2.0))
    assert machine.choose_precision("auto")[0] == "fp32" and calls == [0.6]
    cached = list((tmp_path / "machine").glob("bf16_probe_*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["speedup"] == 0.6
    assert machine.choose_precision("auto", use_cache=False)[0] == "bf16"
    monkeypatch.setattr(machine, "cpu_info", cpu(["amx_bf16", "avx512_bf16"]))
    assert machine.choose_precision("auto")[0] == "bf16"  # another CPU, its own probe
    with pytest.raises(ValueError, match="precision must be one of"):
        machine.choose_precision("fast")


def test_bf16_sampling_is_reproducible_and_log_prob_tracks_fp32(network):
    import probseq

    fast = probseq.LSTMAutoregressive(network, 30, precision="bf16")
    exact = probseq.LSTMAutoregressive(network, 30)
    assert fast.precision == "bf16" and exact.precision == "fp32"
    first = fast.sample(16, seed=(3, 4)).numpy()
    np.testing.assert_array_equal(first, fast.sample(16, seed=(3, 4)).numpy())
    compiled = tf.function(lambda: fast.sample(16, seed=(3, 4)))
    np.testing.assert_array_equal(first, compiled().numpy())
    gap = np.abs(fast.log_prob(first).numpy() - exact.log_prob(first).numpy()) / 30
    assert gap.max() < 1e-2  # nats per character
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'bf16'"):
        probseq.LSTMAutoregressive(network, 30, precision="fp16")
