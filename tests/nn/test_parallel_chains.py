"""Batch slices run as concurrent time loops (`probseq.nn.threads`, `cells.slice_sizes`).

The cut is decided by the process's TensorFlow thread settings, which cannot change once
TensorFlow runs; so most tests force the number of slices by patching
`probseq.nn.threads.parallel_chains` (and the cut thresholds) and compare against the uncut
pass, and one subprocess checks the real `set_cpu_threads()` configuration end to end.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import probseq
from probseq.nn import cells, threads
from probseq.nn.cells import (
    CELL_NAMES,
    cell_encode,
    cell_hidden,
    cell_initial_state,
    cell_logits,
    init_cell_params,
    slice_sizes,
)

ROOT = Path(__file__).resolve().parents[2]
V, H = 7, 5


@pytest.fixture
def chains(monkeypatch):
    """`set(n)` forces `n` slices and allows slices of a single row and any size."""

    def set_chains(n: int):
        monkeypatch.setattr(threads, "parallel_chains", lambda: n)
        monkeypatch.setattr(threads, "MIN_CHAIN_ROWS", 1)
        monkeypatch.setattr(threads, "MIN_SLICE_WORK", 0)

    return set_chains


def _close(a, b):
    """Equal up to the float rounding of GEMMs of a different height."""
    b = np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def _while_loops(fn, *args) -> int:
    graph = tf.function(fn).get_concrete_function(*args).graph
    return sum(op.type in ("While", "StatelessWhile") for op in graph.get_operations())


def test_default_thread_settings_do_not_cut():
    # This test process never calls set_cpu_threads: TensorFlow's defaults, no cut.
    assert probseq.nn.parallel_chains() == 1
    assert slice_sizes(128, 0, _state(128, 512)) is None


def _state(rows: int, hidden: int = H, layers: int = 1) -> tuple:
    zeros = tf.zeros([rows, hidden])
    return tuple(cells.LSTMState(zeros, zeros) for _ in range(layers))


def test_slice_sizes_rules(chains):
    chains(2)
    assert slice_sizes(5, 0, _state(5)) == [3, 2]
    assert slice_sizes(tf.constant(4), 0, _state(4)) == [2, 2]
    assert slice_sizes(None, 0, _state(4)) is None  # unknown batch size: one loop
    assert slice_sizes(1, 0, _state(1)) is None  # fewer rows than slices
    chains(3)
    assert slice_sizes(7, 0, _state(7)) == [3, 2, 2]
    state = (cells.LSTMState(tf.zeros([7, H]), tf.zeros([1, H])),)  # broadcast h: no cut
    assert slice_sizes(7, 0, state) is None


def test_slice_sizes_default_thresholds(monkeypatch):
    monkeypatch.setattr(threads, "parallel_chains", lambda: 2)
    # Benchmark shapes are cut: 1x512 and 2x256 at batch 128, 2x256 sampling at batch 64.
    assert slice_sizes(128, 0, _state(128, 512)) == [64, 64]
    assert slice_sizes(128, 0, _state(128, 256, layers=2)) == [64, 64]
    assert slice_sizes(64, 0, _state(64, 256, layers=2)) == [32, 32]
    # Too little work per slice: the echo task's 1x64 at batch 128, or 8 rows per slice.
    assert slice_sizes(128, 0, _state(128, 64)) is None
    assert slice_sizes(16, 0, _state(16, 1024)) is None
    assert threads.cut_pays(128, [256, 256], chains=2)
    assert not threads.cut_pays(128, [64], chains=2)
    assert not threads.cut_pays(128, [512], chains=1)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("param_batch", [False, True])
@pytest.mark.parametrize("num_chains", [2, 3])
def test_cut_pass_equals_one_pass(chains, cell, param_batch, num_chains):
    layers = 2
    params = init_cell_params(V, H, layers, cell=cell, seed=4)
    batch = [5, 2]
    if param_batch:  # two posterior draws: params [2, ...], tokens [2, 5, 2, T]
        draws = init_cell_params(V, H, layers, cell=cell, seed=5)
        params = tf.nest.map_structure(lambda a, b: tf.stack([a, b]), params, draws)
        batch = [2, *batch]
    tokens = tf.random.stateless_uniform([*batch, 6], [1, 2], 0, V, dtype=tf.int32)
    state = cell_initial_state(params, batch, cell=cell)

    def run(params):
        logits, final = cell_logits(params, tokens, state, cell=cell)
        loss = tf.reduce_sum(tf.sin(logits)) + sum(tf.reduce_sum(s.h) for s in final)
        return logits, final, loss

    def with_gradients(params):
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits, final, loss = run(params)
        return logits, final, tape.gradient(loss, params)

    expected = with_gradients(params)
    expected_hidden = cell_hidden(params, tokens, state, cell=cell)[0]
    loops_one = _while_loops(lambda: run(params)[0])
    chains(num_chains)
    got = with_gradients(params)
    tf.nest.map_structure(_close, expected, got)
    assert loops_one == layers
    assert _while_loops(lambda: run(params)[0]) == layers * num_chains
    # The encoder / hidden-only passes cut the same way.
    _close(cell_hidden(params, tokens, state, cell=cell)[0], expected_hidden)
    final = cell_encode(params, tokens, state, cell=cell)
    tf.nest.map_structure(_close, expected[1], final)


def test_no_cut_inside_xla(chains):
    params = init_cell_params(V, H, 1, seed=1)
    tokens = tf.zeros([8, 4], tf.int32)
    state = cell_initial_state(params, [8])
    chains(2)

    def logits():
        return cell_logits(params, tokens, state)[0]

    graph = tf.function(logits, jit_compile=True).get_concrete_function().graph
    assert sum(op.type in ("While", "StatelessWhile") for op in graph.get_operations()) == 1
    assert _while_loops(logits) == 2


def test_log_prob_and_fit_step_agree_when_cut(chains):
    net = probseq.LSTMNetwork(V, H, 2, seed=3)
    dist = probseq.LSTMAutoregressive(net, num_steps=6)
    x = dist.sample(9, seed=[3, 4])
    expected = dist.log_prob(x)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(x))
    grads = tape.gradient(loss, net.trainable_variables)
    chains(2)
    np.testing.assert_allclose(dist.log_prob(x), expected, rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(x))
    for a, b in zip(grads, tape.gradient(loss, net.trainable_variables), strict=True):
        _close(tf.convert_to_tensor(b), tf.convert_to_tensor(a))


@pytest.mark.parametrize("batch_params", [False, True])
def test_cut_sampler_draws_the_same_sample(chains, batch_params):
    net = probseq.LSTMNetwork(V, H, 2, seed=3)
    temperature = [0.7, 1.3] if batch_params else None
    dist = probseq.LSTMAutoregressive(net, num_steps=12, temperature=temperature)

    def draw():
        return dist.sample(10, seed=[5, 6])

    expected = draw()
    loops = _while_loops(draw)
    chains(2)
    np.testing.assert_array_equal(draw(), expected)
    assert _while_loops(draw) == 2 * loops
    np.testing.assert_array_equal(tf.function(draw)(), expected)


def test_set_cpu_threads_end_to_end():
    """A fresh process: the real thread settings, the cut, and the errors."""
    script = textwrap.dedent(
        """
        import numpy as np, pytest, tensorflow as tf
        import probseq
        from probseq.nn import parallel_chains, usable_cpus
        with pytest.raises(ValueError, match="intra_op must be an int >= 1"):
            probseq.set_cpu_threads(intra_op=0)
        probseq.set_cpu_threads(inter_op=2)
        assert parallel_chains() == 2, parallel_chains()
        probseq.set_cpu_threads(inter_op=2)  # same settings again: fine
        net = probseq.LSTMNetwork(11, 256, 2, seed=1)
        dist = probseq.LSTMAutoregressive(net, num_steps=7)
        x = dist.sample(40, seed=[1, 2])  # 40 rows: 2 slices of 20
        graph = tf.function(dist.log_prob).get_concrete_function(x).graph
        loops = sum(op.type in ("While", "StatelessWhile") for op in graph.get_operations())
        assert loops == 2 * 2, loops  # 2 layers x 2 slices
        batched = dist.log_prob(x).numpy()
        single = np.concatenate([dist.log_prob(x[i : i + 1]).numpy() for i in range(40)])
        np.testing.assert_allclose(batched, single, rtol=1e-5)
        with pytest.raises(RuntimeError, match="came too late"):
            probseq.set_cpu_threads(intra_op=2)
        print("OK", usable_cpus())
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK")


@pytest.mark.parametrize(
    ("hidden_sizes", "expected"), [([64], "0 0"), ([256, 256], "1 2")], ids=["small", "large"]
)
def test_scripts_set_threads_only_when_cutting_pays(hidden_sizes, expected):
    """`use_probseq_threads(batch, hidden_sizes)` (the CLI's `train`, the experiment
    scripts) keeps TensorFlow's defaults for models too small to cut."""
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        from probseq.nn.threads import use_probseq_threads
        use_probseq_threads(128, {hidden_sizes})
        print(tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpus = probseq.nn.usable_cpus()
    if expected == "1 2":  # one inter-op thread per CPU; with one CPU nothing is cut
        expected = f"1 {cpus}" if cpus >= 2 else "0 0"
    assert proc.stdout.split()[-2:] == expected.split()
