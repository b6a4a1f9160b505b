"""The two fp32 ideas of benchmarks/ANALYSIS.md, timed against probseq's own path.

Run (from the repository root; one process, variants round-robin so that load hits them
alike, after `probseq.set_cpu_threads()`, i.e. one thread per op and one slice per core):

    python benchmarks/fp32_ideas.py --case train_text8
    python benchmarks/fp32_ideas.py --case eval_charrnn --rounds 5 --seconds 3
    python benchmarks/fp32_ideas.py --case train_text8 --quick --rounds 1 --check  # smoke

Variants (`--variants`, default: all that apply to the case's kind):

* `api`: `LSTMAutoregressive(net, T).log_prob` in a `tf.function` (no XLA), the path
  `fit_map` and `evaluate` compile: the batch cut into one slice per core, each slice's
  time loops run concurrently by TensorFlow's executor, gate math as separate ops.
* `xla_slices`: the same slices, but each slice's loss is ONE call of a
  `tf.function(jit_compile=True)` made from the outer (non-XLA) graph: XLA fuses each
  slice's gate math, and the outer executor still runs the slices' clusters (and their
  compiled gradients) concurrently. Under whole-step XLA (`probseq_xla`) the slices run
  one after another.
* `while_slices` (train only): the same slices through a plain `tf.while_loop`
  recurrence with autodiff; the layer-0 input projection gathered before the loop. The
  control for:
* `bptt_slices` (train only): `while_slices` with a hand-written backward pass
  (`tf.custom_gradient`): the backward loop computes `dz_t` and `dh_{t-1} = dz_t W^T`
  only, and the recurrent weight gradient is ONE `[H, T*B] x [T*B, 4H]` GEMM after the
  loop instead of T small GEMMs accumulated into an `[H, 4H]` buffer.

Train: the loss is fit_map's (mean over the batch of the per-sequence NLL), tf_keras
Adam, global-norm clipping when the case has it. `--check` compares every variant's loss
and gradients with `api`'s first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import case_spec, random_batches  # noqa: E402

TRAIN_VARIANTS = ["api", "xla_slices", "while_slices", "bptt_slices"]
EVAL_VARIANTS = ["api", "xla_slices"]


def _gates(tf, z, c):
    """probseq's LSTM cell (gate order i, f, o, u; forget bias +1)."""
    i, f, o, u = tf.split(z, 4, axis=-1)
    c = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(u)
    return c, tf.sigmoid(o) * tf.tanh(c)


def _while_recurrence(tf, xz, w, c, h):
    """Forward recurrence over `xz :: [T, B, 4H]` (autodiff backward); returns hs."""
    steps = tf.shape(xz)[0]
    inputs = tf.TensorArray(xz.dtype, size=steps).unstack(xz)
    outputs = tf.TensorArray(xz.dtype, size=steps, element_shape=h.shape)

    def body(t, c, h, outputs):
        c, h = _gates(tf, inputs.read(t) + tf.matmul(h, w), c)
        return t + 1, c, h, outputs.write(t, h)

    loop = tf.while_loop(
        lambda t, *_: t < steps, body, (0, c, h, outputs), maximum_iterations=steps
    )
    return loop[3].stack()


def _bptt_recurrence(tf):
    """The recurrence with a hand-written backward pass (one weight-gradient GEMM)."""

    @tf.custom_gradient
    def recurrence(xz, w, c0, h0):
        steps = tf.shape(xz)[0]
        inputs = tf.TensorArray(xz.dtype, size=steps).unstack(xz)

        def array(shape):
            return tf.TensorArray(xz.dtype, size=steps, element_shape=shape)

        def body(t, c, h, hs, cs, tcs, acts):
            z = inputs.read(t) + tf.matmul(h, w)
            i, f, o, u = tf.split(z, 4, axis=-1)
            si, sf, so, tu = tf.sigmoid(i), tf.sigmoid(f + 1.0), tf.sigmoid(o), tf.tanh(u)
            c = sf * c + si * tu
            tc = tf.tanh(c)
            h = so * tc
            act = tf.concat([si, sf, so, tu], -1)
            return t + 1, c, h, hs.write(t, h), cs.write(t, c), tcs.write(t, tc), acts.write(t, act)

        init = (0, c0, h0, array(h0.shape), array(h0.shape), array(h0.shape), array(xz.shape[1:]))
        loop = tf.while_loop(lambda t, *_: t < steps, body, init, maximum_iterations=steps)
        hs, cells, tcs, acts = (a.stack() for a in loop[3:])

        def grad(dhs):
            c_prev = tf.concat([c0[None], cells[:-1]], 0)

            def back(t, dh_next, dc_next, dz_ta):
                si, sf, so, tu = tf.split(acts[t], 4, axis=-1)
                tc = tcs[t]
                dh = dhs[t] + dh_next
                dc = dc_next + dh * so * (1.0 - tc * tc)
                dz = tf.concat(
                    [
                        dc * tu * si * (1.0 - si),
                        dc * c_prev[t] * sf * (1.0 - sf),
                        dh * tc * so * (1.0 - so),
                        dc * si * (1.0 - tu * tu),
                    ],
                    -1,
                )
                return t - 1, tf.matmul(dz, w, transpose_b=True), dc * sf, dz_ta.write(t, dz)

            start = (steps - 1, tf.zeros_like(h0), tf.zeros_like(c0), array(xz.shape[1:]))
            loop = tf.while_loop(lambda t, *_: t >= 0, back, start, maximum_iterations=steps)
            dh0, dc0, dz_all = loop[1], loop[2], loop[3].stack()
            hidden = h0.shape[-1]
            h_prev = tf.reshape(tf.concat([h0[None], hs[:-1]], 0), [-1, hidden])
            dw = tf.matmul(h_prev, tf.reshape(dz_all, [-1, 4 * hidden]), transpose_a=True)
            return dz_all, dw, dc0, dh0

        return hs, grad

    return recurrence


def _plain_nll_sum(tf, params, tokens, recurrence):
    """Sum over the slice of probseq's per-sequence NLL, with `recurrence` per layer.

    Step 1 reads no token (z = b, the state starts at zero); steps 2..T read tokens
    1..T-1: layer 0's inputs are rows of `[b; W_in + b]` gathered before the loop.
    """
    layers = sum(1 for k in params if k.startswith("layer_"))
    batch = tf.shape(tokens)[0]
    hidden = params["output"]["kernel"].shape[0]
    reads = tf.transpose(tf.concat([tf.zeros_like(tokens[:, :1]), tokens[:, :-1] + 1], 1))
    zeros = tf.zeros([batch, hidden])
    x = None
    for index in range(layers):
        layer = params[f"layer_{index}"]
        if index == 0:
            table = tf.concat([layer["bias"][None], layer["input_kernel"] + layer["bias"]], 0)
            xz = tf.gather(table, reads)
        else:
            xz = tf.tensordot(x, layer["input_kernel"], 1) + layer["bias"]
        x = recurrence(xz, layer["recurrent_kernel"], zeros, zeros)
    logits = tf.tensordot(x, params["output"]["kernel"], 1) + params["output"]["bias"]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.transpose(tokens), logits=logits)
    return tf.reduce_sum(nll)


def build(variant: str, spec, train: bool, net):
    """`(step(tokens) -> loss, loss_and_grads(tokens))` for `variant`."""
    import tensorflow as tf
    import tf_keras

    import probseq
    from probseq.nn.threads import parallel_chains

    dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps)
    variables = list(net.trainable_variables)
    parts = parallel_chains()
    if variant == "api":

        def loss_fn(tokens):
            return -tf.reduce_mean(dist.log_prob(tokens))

    else:
        if variant == "xla_slices" and train:
            # An XLA cluster cannot hand its loops' TensorLists to a gradient outside
            # it, so each slice's cluster computes its loss AND its gradients.
            @tf.function(jit_compile=True)
            def slice_grads(t):
                with tf.GradientTape() as tape:
                    loss = -tf.reduce_sum(dist.log_prob(t))
                return loss, tape.gradient(loss, variables)

            def loss_and_grads(tokens):
                pieces = tf.split(tokens, parts, axis=0) if parts > 1 else [tokens]
                outs = [slice_grads(p) for p in pieces]
                loss = tf.add_n([o[0] for o in outs]) / spec.batch
                grads = [
                    tf.add_n(list(g)) / spec.batch for g in zip(*(o[1] for o in outs), strict=True)
                ]
                return loss, grads

            return _compiled(tf, tf_keras, spec, variables, loss_and_grads, None, train)
        if variant == "xla_slices":
            one = tf.function(lambda t: -tf.reduce_sum(dist.log_prob(t)), jit_compile=True)
        elif variant == "while_slices":

            def one(t):
                return _plain_nll_sum(tf, net.params, t, lambda *a: _while_recurrence(tf, *a))

        elif variant == "bptt_slices":
            recurrence = _bptt_recurrence(tf)

            def one(t):
                return _plain_nll_sum(tf, net.params, t, recurrence)

        else:
            raise SystemExit(f"unknown variant {variant!r}")

        def loss_fn(tokens):
            pieces = tf.split(tokens, parts, axis=0) if parts > 1 else [tokens]
            return tf.add_n([one(p) for p in pieces]) / spec.batch

    def loss_and_grads(tokens):
        with tf.GradientTape() as tape:
            loss = loss_fn(tokens)
        return loss, tape.gradient(loss, variables)

    return _compiled(tf, tf_keras, spec, variables, loss_and_grads, loss_fn, train)


def _compiled(tf, tf_keras, spec, variables, loss_and_grads, loss_fn, train):
    """`(step(tokens) -> loss as float, tf.function(loss_and_grads))`."""
    from probseq.inference import global_norm_clip

    optimizer = tf_keras.optimizers.Adam(spec.learning_rate)

    def train_step(tokens):
        loss, grads = loss_and_grads(tokens)
        grads, _ = global_norm_clip(grads, spec.clip_norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    fn = tf.function(train_step if train else loss_fn)
    return (lambda tokens: float(fn(tokens))), tf.function(loss_and_grads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="train_text8")
    parser.add_argument("--variants", default=None, help="comma list (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant per round")
    parser.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run)")
    parser.add_argument("--check", action="store_true", help="compare losses and gradients")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    import probseq
    from probseq.machine import cpu_info, describe_machine

    probseq.set_cpu_threads()
    spec = case_spec(args.case, args.quick)
    train = spec.kind == "train"
    if spec.kind == "sample":
        raise SystemExit("fp32_ideas.py times train and eval cases only")
    names = (args.variants or ",".join(TRAIN_VARIANTS if train else EVAL_VARIANTS)).split(",")
    print(describe_machine(cpu_info()), flush=True)
    batches = [tf.constant(b[:, : spec.steps]) for b in random_batches(spec)]
    steps, grads = {}, {}
    for name in names:
        net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=1)
        t0 = time.perf_counter()
        steps[name], grads[name] = build(name, spec, train, net)
        if args.check:
            loss, g = grads[name](batches[0])
            if name == names[0]:
                grads["_ref"] = (loss, g)
            ref_loss, ref = grads["_ref"]
            worst = abs(float(loss) - float(ref_loss)) / abs(float(ref_loss))
            for a, b in zip(g, ref, strict=True):
                a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
                scale = float(tf.reduce_max(tf.abs(b))) + 1e-12
                worst = max(worst, float(tf.reduce_max(tf.abs(a - b))) / scale)
            print(f"  {name:14s} max rel. difference from {names[0]}: {worst:.1e}", flush=True)
        steps[name](batches[0])
        print(f"built {name:14s} first call {time.perf_counter() - t0:.1f} s", flush=True)
    chars = spec.batch * spec.steps
    rates = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            count, t0 = 0, time.perf_counter()
            while count < 2 or time.perf_counter() - t0 < args.seconds:
                steps[name](batches[count % len(batches)])
                count += 1
            rates[name].append(count * chars / (time.perf_counter() - t0))
        print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}" for n in names), flush=True)
    base = statistics.median(rates[names[0]])
    print(f"\n{spec.name} ({spec.layers}x{spec.hidden}, T={spec.steps}, B={spec.batch}), chars/s")
    print(f"{'variant':14s} {'median':>10s} {'min':>10s} {'max':>10s}  vs {names[0]}")
    for name in names:
        med = statistics.median(rates[name])
        print(
            f"{name:14s} {med:10,.0f} {min(rates[name]):10,.0f} {max(rates[name]):10,.0f}"
            f"  {med / base:6.2f}"
        )
    print(f"load average: {np.round(os.getloadavg(), 2).tolist()}")


if __name__ == "__main__":
    main()
