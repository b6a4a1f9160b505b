"""Experiments: faster variants of probseq's LSTM core, timed side by side (not the suite).

Run (from the repository root):

    python benchmarks/prototypes.py --case train_text8                 # all train variants
    python benchmarks/prototypes.py --case eval_text8 --variants api_graph,fused_xla
    python benchmarks/prototypes.py --case train_text8 --threads 2,1   # intra, inter op
    python benchmarks/prototypes.py --case train_text8 --quick --rounds 1   # smoke

Every variant computes the same model and loss as `probseq.inference.fit_map` on
`LSTMAutoregressive(net, T).log_prob` (a zero start state and no input token at the first
step; forget bias +1; mean over the batch of the per-sequence NLL; tf_keras Adam;
global-norm clipping where the case has it; the global gradient norm is computed every
step like `fit_map` does). Variants are run round-robin (`--rounds` rounds, each variant
`--seconds` per round) so that load from other processes hits them alike; the report is
the median chars/s over rounds, and each variant's ratio to `api_graph` and to a
tf_keras model timed in the same rounds (`keras`).

Variants (train; eval uses the forward part of each):

* `api_graph` / `api_xla`: probseq's public path (`LSTMAutoregressive.log_prob`), the
  same step `fit_map` compiles, without / with XLA.
* `core_graph`: `probseq.nn.lstm_logits` + `lstm_start` called directly (no
  distribution machinery), to see what the distribution layer costs.
* `scan_graph`: the recurrence with `tf.scan` instead of `tf.while_loop`.
* `fused_graph` / `fused_xla`: the while loop with fused gate math: the forget +1 is
  folded into the input projection and the `u` gate pre-scaled by 2 (in the kernel and
  the input projection) so that ONE sigmoid covers all four gates
  (`tanh(u) = 2 sigmoid(2u) - 1`).
* `bptt_graph` / `bptt_xla`: a hand-written backward pass (`tf.custom_gradient` around
  each layer's recurrence): the forward loop saves the gate activations and `tanh(c)`;
  the backward loop does only `dz_t` and `dh_{t-1} = dz_t W^T` per step; the recurrent
  weight gradient is ONE GEMM over all steps, `H_prev^T DZ`, instead of T small GEMMs
  plus T accumulations of an `[H, 4H]` matrix.
* `bptt_t_graph`: the same with the recurrent kernel stored transposed (`[4H, H]`).
* `bptt_bf16_graph`: `bptt` with the recurrent matmuls in bfloat16 (fp32 state, fp32
  gradients accumulated outside the loop).
* `while_graph`: probseq's loop re-implemented here (same math as `core_graph`);
  `<variant>_fb_graph` (e.g. `while_fb_graph`, `bptt_fb_graph`): the first layer's bias
  folded into the gathered table (`gather([b; W_in + b], [0; tokens + 1])`), so the
  `[T, B, 4H]` input projection is written once, and the bias gradient is a sum over
  `V + 1` rows instead of over `T * B` rows.
* `gil_graph` / `gil_xla`: layer 0's input rows gathered inside the time loop from the
  small `[V + 1, 4H]` table (see `gil_nll`) instead of a `[T, B, 4H]` tensor built
  before the loop.
* `block_graph`: TF's fused CPU LSTM kernel `tf.raw_ops.BlockLSTM` (forward and its
  registered gradient `BlockLSTMGrad`): the whole time loop in one C++ op; layer 0
  reads one-hot tokens (+V/H extra GEMM work), layers above their inputs in-loop.
* `splitK_<variant>` (e.g. `split2_bptt_graph`): the batch cut into K slices, each run
  through its own time loops; the slices are independent, so TF's executor runs them
  concurrently (one per core with `--threads 1,2`: no per-op thread synchronization).
* `keras` / `keras_xla`: the tf_keras peer's train step (`model.train_on_batch`-style
  compiled `train_step`), in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import case_spec, random_batches  # noqa: E402

TRAIN_VARIANTS = [
    "api_graph",
    "api_xla",
    "core_graph",
    "scan_graph",
    "fused_graph",
    "fused_xla",
    "bptt_graph",
    "bptt_xla",
    "bptt_t_graph",
    "bptt_bf16_graph",
    "block_graph",
    "gil_graph",
    "gil_graph",
    "keras",
    "keras_xla",
]
SAMPLE_VARIANTS = [
    "api_graph",
    "api_xla",
    "lean_graph",
    "lean_xla",
    "leanfused_graph",
    "leanfused_xla",
    "keras",
]
EVAL_VARIANTS = [
    "api_graph",
    "api_xla",
    "core_graph",
    "scan_graph",
    "fused_graph",
    "fused_xla",
    "block_graph",
    "gil_graph",
    "keras",
    "keras_xla",
]


# --------------------------------------------------------------------------- core math
def _tf():
    import tensorflow as tf

    return tf


def gates(z, c):
    """probseq's reference cell (gate order i, f, o, u; forget bias +1)."""
    tf = _tf()
    i, f, o, u = tf.split(z, 4, axis=-1)
    c = tf.sigmoid(f + 1.0) * c + tf.sigmoid(i) * tf.tanh(u)
    return c, tf.sigmoid(o) * tf.tanh(c)


def fold_for_fused(xz, w):
    """Pre-scale so one sigmoid gives all gates: `(xz + shift) * scale`, `w * scale`.

    shift adds the forget +1; scale doubles the `u` block (tanh(u) = 2 sigmoid(2u) - 1).
    """
    tf = _tf()
    hidden = w.shape[-1] // 4
    ones = tf.ones([hidden], xz.dtype)
    scale = tf.concat([ones, ones, ones, 2 * ones], 0)
    shift = tf.concat([0 * ones, ones, 0 * ones, 0 * ones], 0)
    return (xz + shift) * scale, w * scale


def fused_gates(z, c):
    tf = _tf()
    s = tf.sigmoid(z)
    si, sf, so, su = tf.split(s, 4, axis=-1)
    c = sf * c + si * (2.0 * su - 1.0)
    return c, so * tf.tanh(c)


def run_while(xz, w, c, h, fused: bool):
    """Forward recurrence with tf.while_loop over `xz :: [T, B, 4H]`; returns hs, c, h."""
    tf = _tf()
    if fused:
        xz, w = fold_for_fused(xz, w)
    cell = fused_gates if fused else gates
    steps = tf.shape(xz)[0]
    inputs = tf.TensorArray(xz.dtype, size=steps).unstack(xz)
    outputs = tf.TensorArray(xz.dtype, size=steps, element_shape=h.shape)

    def body(t, c, h, outputs):
        c, h = cell(inputs.read(t) + tf.matmul(h, w), c)
        return t + 1, c, h, outputs.write(t, h)

    _, c, h, outputs = tf.while_loop(
        lambda t, *_: t < steps, body, (0, c, h, outputs), maximum_iterations=steps
    )
    return outputs.stack(), c, h


def run_scan(xz, w, c, h):
    tf = _tf()

    def step(carry, x):
        c, h = carry
        return gates(x + tf.matmul(h, w), c)

    cs, hs = tf.scan(step, xz, initializer=(c, h))
    return hs, cs[-1], hs[-1]


def make_bptt(transposed: bool = False, bf16: bool = False):
    """Recurrence with a hand-written backward pass (see module docstring)."""
    tf = _tf()

    def mm(h, w):
        """h [B, H] times the recurrent kernel (stored [H,4H] or transposed [4H,H])."""
        if bf16:
            h, w = tf.cast(h, tf.bfloat16), tf.cast(w, tf.bfloat16)
            out = tf.matmul(h, w, transpose_b=transposed)
            return tf.cast(out, tf.float32)
        return tf.matmul(h, w, transpose_b=transposed)

    def mm_back(dz, w):
        """dz [B, 4H] times the kernel's transpose -> [B, H]."""
        if bf16:
            dz, w = tf.cast(dz, tf.bfloat16), tf.cast(w, tf.bfloat16)
            return tf.cast(tf.matmul(dz, w, transpose_b=not transposed), tf.float32)
        return tf.matmul(dz, w, transpose_b=not transposed)

    @tf.custom_gradient
    def recurrence(xz, w, c0, h0):
        steps = tf.shape(xz)[0]
        wk = tf.cast(w, tf.bfloat16) if bf16 else w
        inputs = tf.TensorArray(xz.dtype, size=steps).unstack(xz)
        ta = lambda shape: tf.TensorArray(xz.dtype, size=steps, element_shape=shape)  # noqa: E731
        hidden = h0.shape[-1]

        def body(t, c, h, hs, cs, tcs, acts):
            if bf16:
                z = inputs.read(t) + tf.cast(
                    tf.matmul(tf.cast(h, tf.bfloat16), wk, transpose_b=transposed), tf.float32
                )
            else:
                z = inputs.read(t) + tf.matmul(h, wk, transpose_b=transposed)
            i, f, o, u = tf.split(z, 4, axis=-1)
            si, sf, so, tu = tf.sigmoid(i), tf.sigmoid(f + 1.0), tf.sigmoid(o), tf.tanh(u)
            c = sf * c + si * tu
            tc = tf.tanh(c)
            h = so * tc
            act = tf.concat([si, sf, so, tu], -1)
            return (
                t + 1,
                c,
                h,
                hs.write(t, h),
                cs.write(t, c),
                tcs.write(t, tc),
                acts.write(t, act),
            )

        _, c, h, hs, cells, tcs, acts = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (0, c0, h0, ta(h0.shape), ta(h0.shape), ta(h0.shape), ta(xz.shape[1:])),
            maximum_iterations=steps,
        )
        hs, cells, tcs, acts = hs.stack(), cells.stack(), tcs.stack(), acts.stack()

        def grad(dhs, dc_last, dh_last):
            dhs = tf.zeros_like(hs) if dhs is None else dhs
            dc_last = tf.zeros_like(c0) if dc_last is None else dc_last
            dh_last = tf.zeros_like(h0) if dh_last is None else dh_last
            c_prev_all = tf.concat([c0[None], cells[:-1]], 0)
            dz_ta = tf.TensorArray(xz.dtype, size=steps, element_shape=xz.shape[1:])

            def back(t, dh_next, dc_next, dz_ta):
                act = acts[t]
                si, sf, so, tu = tf.split(act, 4, axis=-1)
                tc = tcs[t]
                dh = dhs[t] + dh_next
                dc = dc_next + dh * so * (1.0 - tc * tc)
                dz = tf.concat(
                    [
                        dc * tu * si * (1.0 - si),
                        dc * c_prev_all[t] * sf * (1.0 - sf),
                        dh * tc * so * (1.0 - so),
                        dc * si * (1.0 - tu * tu),
                    ],
                    -1,
                )
                return t - 1, mm_back(dz, w), dc * sf, dz_ta.write(t, dz)

            _, dh0, dc0, dz_ta = tf.while_loop(
                lambda t, *_: t >= 0,
                back,
                (steps - 1, dh_last, dc_last, dz_ta),
                maximum_iterations=steps,
            )
            dz_all = dz_ta.stack()  # :: [T, B, 4H]
            h_prev = tf.concat([h0[None], hs[:-1]], 0)
            flat_h = tf.reshape(h_prev, [-1, hidden])
            flat_dz = tf.reshape(dz_all, [-1, 4 * hidden])
            if transposed:
                dw = tf.matmul(flat_dz, flat_h, transpose_a=True)  # [4H, H]
            else:
                dw = tf.matmul(flat_h, flat_dz, transpose_a=True)  # [H, 4H]
            return dz_all, dw, dc0, dh0

        return (hs, c, h), grad

    return recurrence


# ------------------------------------------------------------------------- sampling
def lean_sampler(params, batch: int, steps: int, fused: bool):
    """`sample(seed) -> [B, T]` int32: probseq's model and Gumbel-max draws, restructured.

    * the start step (zero state, no token) is computed once outside the loop;
    * layer 0's bias is folded into its gathered input rows (`E = W_in + b`);
    * layers above do ONE matmul on `[x, h]` with the stacked kernel `[W_in; W_h]`;
    * all Gumbel noise `[T, B, V]` is drawn with one stateless op before the loop;
    * `fused`: one sigmoid for all four gates (see `fold_for_fused`).
    """
    tf = _tf()
    from probseq.nn import lstm_start

    layers = sum(1 for k in params if k.startswith("layer_"))
    vocab = params["output"]["kernel"].shape[-1]

    def prepare():
        emb = params["layer_0"]["input_kernel"] + params["layer_0"]["bias"]
        rec = [params["layer_0"]["recurrent_kernel"]]
        biases = [None]
        for index in range(1, layers):
            layer = params[f"layer_{index}"]
            rec.append(tf.concat([layer["input_kernel"], layer["recurrent_kernel"]], 0))
            biases.append(layer["bias"])
        if fused:
            emb, rec[0] = fold_for_fused(emb, rec[0])
            for index in range(1, layers):
                biases[index], rec[index] = fold_for_fused(biases[index], rec[index])
        return emb, rec, biases

    cell = fused_gates if fused else gates

    def sample(seed):
        emb, rec, biases = prepare()
        logits, state = lstm_start(params)
        state = [tuple(tf.broadcast_to(s, [batch, s.shape[-1]]) for s in st) for st in state]
        u = tf.random.stateless_uniform(
            [steps, batch, vocab], seed, minval=np.finfo(np.float32).tiny, maxval=1.0
        )
        gumbel = -tf.math.log(-tf.math.log(u))
        first = tf.argmax(logits + gumbel[0], -1, output_type=tf.int32)
        tokens = tf.TensorArray(tf.int32, size=steps).write(0, first)

        def body(t, token, state, tokens):
            z = tf.gather(emb, token) + tf.matmul(state[0][1], rec[0])
            new = [cell(z, state[0][0])]
            for index in range(1, layers):
                xh = tf.concat([new[-1][1], state[index][1]], -1)
                z = tf.matmul(xh, rec[index]) + biases[index]
                new.append(cell(z, state[index][0]))
            logits = tf.matmul(new[-1][1], params["output"]["kernel"]) + params["output"]["bias"]
            token = tf.argmax(logits + gumbel[t], -1, output_type=tf.int32)
            return t + 1, token, new, tokens.write(t, token)

        _, _, _, tokens = tf.while_loop(
            lambda t, *_: t < steps, body, (1, first, state, tokens), maximum_iterations=steps - 1
        )
        return tf.transpose(tokens.stack())

    return sample


def build_sampler(variant: str, spec):
    """`call() -> np.ndarray [B, T]` for a sampling variant."""
    tf = _tf()
    import itertools

    import probseq

    if variant == "keras":
        from benchmarks.impl_tf_keras import sampler

        return sampler(spec, "graph")
    jit = variant.endswith("_xla")
    net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=1)
    if variant.startswith("api"):
        dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps)
        fn = tf.function(lambda seed: dist.sample(spec.batch, seed=seed), jit_compile=jit)
    else:
        fused = variant.startswith("leanfused")
        fn = tf.function(lean_sampler(net.params, spec.batch, spec.steps, fused), jit_compile=jit)
    seeds = (tf.constant([i, 7], tf.int32) for i in itertools.count())
    return lambda: fn(next(seeds)).numpy()


# ------------------------------------------------------------------------- the models
def lstm_nll(params, tokens, recurrence, fold_bias: bool = False):
    """Mean over the batch of the per-sequence NLL, probseq's model, with `recurrence`
    `(xz [T,B,4H], w, c0, h0) -> (hs [T,B,H], c, h)` plugged in for every layer.

    Step 1 reads no token (z = h0 W + b with h0 = 0); steps 2..T read tokens 1..T-1:
    the input projections of all T steps are [0; gather(tokens[:, :-1])] + b.
    """
    tf = _tf()
    layers = sum(1 for k in params if k.startswith("layer_"))
    batch = tf.shape(tokens)[0]
    hidden = params["output"]["kernel"].shape[0]
    inputs = tf.transpose(tokens[:, :-1])  # :: [T-1, B]
    zeros = tf.zeros([batch, hidden])
    x = None
    for index in range(layers):
        layer = params[f"layer_{index}"]
        if index == 0 and fold_bias:
            # One pass: gather rows of (W_in + b); step 1 reads the bias row alone.
            table = tf.concat([layer["bias"][None], layer["input_kernel"] + layer["bias"]], 0)
            xz = tf.gather(table, tf.concat([tf.zeros_like(inputs[:1]), inputs + 1], 0))
        elif index == 0:
            xz = tf.gather(layer["input_kernel"], inputs)  # :: [T-1, B, 4H]
            xz = tf.concat([tf.zeros_like(xz[:1]), xz], 0) + layer["bias"]
        else:
            xz = tf.tensordot(x, layer["input_kernel"], 1) + layer["bias"]
        x, _, _ = recurrence(xz, layer["recurrent_kernel"], zeros, zeros)
    logits = tf.tensordot(x, params["output"]["kernel"], 1) + params["output"]["bias"]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.transpose(tokens), logits=logits)
    return tf.reduce_sum(nll) / tf.cast(batch, tf.float32)


def gil_nll(params, tokens):
    """The same loss, but layer 0's input rows are gathered INSIDE the time loop.

    probseq builds the whole `[T, B, 4H]` input projection before the loop (a gather,
    a bias add, a TensorArray unstack copy; backward: a stack, a bias reduction over
    `T * B` rows and a segment sum: six passes over a 64 MB tensor at text8 shapes).
    Here the loop reads `[B]` tokens per step and gathers `B` rows of the small table
    `[b; W_in + b]` (`V + 1` rows; row 0 = the start step's bias-only input), like the
    Keras layer reads `[B, V]` one-hot inputs per step. The table's gradient is a
    `[V + 1, 4H]` segment sum per step.
    """
    tf = _tf()
    layers = sum(1 for k in params if k.startswith("layer_"))
    batch = tf.shape(tokens)[0]
    hidden = params["output"]["kernel"].shape[0]
    reads = tf.transpose(tf.concat([tf.zeros_like(tokens[:, :1]), tokens[:, :-1] + 1], 1))
    zeros = tf.zeros([batch, hidden])
    layer = params["layer_0"]
    table = tf.concat([layer["bias"][None], layer["input_kernel"] + layer["bias"]], 0)
    w = layer["recurrent_kernel"]
    steps = tf.shape(reads)[0]
    outputs = tf.TensorArray(tf.float32, size=steps, element_shape=zeros.shape)

    def body(t, c, h, outputs):
        c, h = gates(tf.gather(table, reads[t]) + tf.matmul(h, w), c)
        return t + 1, c, h, outputs.write(t, h)

    _, _, _, outputs = tf.while_loop(
        lambda t, *_: t < steps, body, (0, zeros, zeros, outputs), maximum_iterations=steps
    )
    x = outputs.stack()
    for index in range(1, layers):
        layer = params[f"layer_{index}"]
        xz = tf.tensordot(x, layer["input_kernel"], 1) + layer["bias"]
        x, _, _ = run_while(xz, layer["recurrent_kernel"], zeros, zeros, fused=False)
    logits = tf.tensordot(x, params["output"]["kernel"], 1) + params["output"]["bias"]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.transpose(tokens), logits=logits)
    return tf.reduce_sum(nll) / tf.cast(batch, tf.float32)


def block_nll(params, tokens):
    """The same loss with TF's fused CPU kernel `BlockLSTM` (tf.raw_ops, has a gradient).

    BlockLSTM multiplies `[x_t, h_{t-1}]` by one stacked kernel per step inside one C++
    op (no per-op executor overhead), gate layout i, c(u), f, o and a built-in forget
    bias (set to probseq's +1, no cell clipping). Layer 0 reads one-hot tokens (the
    start step reads a zero vector: `one_hot(-1)`), so its per-step GEMM is
    `[B, V + H] x [V + H, 4H]`; layers above read the hidden outputs below.
    """
    tf = _tf()
    from tensorflow.python.ops import gen_rnn_ops

    layers = sum(1 for k in params if k.startswith("layer_"))
    vocab = params["output"]["kernel"].shape[-1]
    hidden = params["output"]["kernel"].shape[0]
    batch = tf.shape(tokens)[0]
    steps = tokens.shape[-1]
    reads = tf.concat([-tf.ones_like(tokens[:, :1]), tokens[:, :-1]], 1)  # :: [B, T]
    x = tf.one_hot(tf.transpose(reads), vocab)  # :: [T, B, V]
    zeros = tf.zeros([batch, hidden])
    peephole = tf.zeros([hidden])

    def icfo(m):
        i, f, o, u = tf.split(m, 4, axis=-1)
        return tf.concat([i, u, f, o], -1)

    for index in range(layers):
        layer = params[f"layer_{index}"]
        w = icfo(tf.concat([layer["input_kernel"], layer["recurrent_kernel"]], 0))
        outputs = gen_rnn_ops.block_lstm(
            seq_len_max=tf.constant(steps, tf.int64),
            x=x,
            cs_prev=zeros,
            h_prev=zeros,
            w=w,
            wci=peephole,
            wcf=peephole,
            wco=peephole,
            b=icfo(layer["bias"]),
            forget_bias=1.0,
            cell_clip=-1.0,
            use_peephole=False,
        )
        x = outputs[6]  # h :: [T, B, H]
    logits = tf.tensordot(x, params["output"]["kernel"], 1) + params["output"]["bias"]
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.transpose(tokens), logits=logits)
    return tf.reduce_sum(nll) / tf.cast(batch, tf.float32)


def core_nll(params, tokens):
    """The same loss through probseq.nn's `lstm_start` + `lstm_logits` directly."""
    tf = _tf()
    from probseq.nn import lstm_logits, lstm_start

    batch = tf.shape(tokens)[0]
    logits0, state = lstm_start(params)  # :: [V], [H]
    state = tf.nest.map_structure(lambda s: tf.broadcast_to(s, [batch, s.shape[-1]]), state)
    rest, _ = lstm_logits(params, tokens[:, :-1], state, time_major=True)
    logits0 = tf.broadcast_to(logits0, [1, batch, logits0.shape[-1]])
    logits = tf.concat([logits0, rest], 0)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.transpose(tokens), logits=logits)
    return tf.reduce_sum(nll) / tf.cast(batch, tf.float32)


def recurrence_for(variant: str, params):
    """The recurrence function of a variant (plus any param transform)."""
    tf = _tf()
    variant = variant.replace("_fb", "")
    if variant.startswith("while"):
        return lambda xz, w, c, h: run_while(xz, w, c, h, fused=False)
    if variant.startswith("fused"):
        return lambda xz, w, c, h: run_while(xz, w, c, h, fused=True)
    if variant.startswith("scan"):
        return run_scan
    if variant.startswith("bptt_t"):
        inner = make_bptt(transposed=True)
        return lambda xz, w, c, h: inner(xz, tf.transpose(w), c, h)
    if variant.startswith("bptt_bf16"):
        return make_bptt(bf16=True)
    if variant.startswith("bptt"):
        return make_bptt()
    raise ValueError(variant)


def build_step(variant: str, spec, train: bool):
    """`step(tokens [B, T+1]) -> loss` compiled for `variant`."""
    tf = _tf()
    import tf_keras

    import probseq
    from probseq.inference import global_norm_clip

    jit = variant.endswith("_xla")
    if variant.startswith("keras"):
        from benchmarks.impl_tf_keras import build_model

        model = build_model(spec)
        model.compile(
            optimizer=tf_keras.optimizers.Adam(spec.learning_rate, global_clipnorm=spec.clip_norm),
            loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        if train:
            return lambda tokens: model.train_on_batch(tokens[:, :-1], tokens[:, 1:])
        return lambda tokens: model.test_on_batch(tokens[:, :-1], tokens[:, 1:])

    net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=1)
    variables = list(net.trainable_variables)
    if variant.startswith("api"):
        dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps)

        def loss_fn(tokens):
            return -tf.reduce_mean(dist.log_prob(tokens[:, :-1]))

    else:
        parts = 1
        base = variant
        if variant.startswith("split"):
            parts, base = int(variant[5]), variant.split("_", 1)[1]
        if base.startswith("core"):

            def one(tokens):
                return core_nll(net.params, tokens)

        elif base.startswith("gil"):

            def one(tokens):
                return gil_nll(net.params, tokens)

        elif base.startswith("block"):

            def one(tokens):
                return block_nll(net.params, tokens)

        else:
            recurrence = recurrence_for(base, net.params)

            fold = "_fb" in variant

            def one(tokens):
                return lstm_nll(net.params, tokens, recurrence, fold_bias=fold)

        def loss_fn(tokens):
            tokens = tokens[:, :-1]
            if parts == 1:
                return one(tokens)
            # Independent batch slices: separate time loops the executor can run
            # concurrently on the inter-op threads.
            pieces = tf.split(tokens, parts, axis=0)
            return tf.add_n([one(piece) for piece in pieces]) / parts

    optimizer = tf_keras.optimizers.Adam(spec.learning_rate)

    def train_step(tokens):
        with tf.GradientTape() as tape:
            loss = loss_fn(tokens)
        grads = tape.gradient(loss, variables)
        grads, _ = global_norm_clip(grads, spec.clip_norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    fn = tf.function(train_step if train else loss_fn, jit_compile=jit or None)
    return lambda tokens: float(fn(tokens))


def check_gradients(spec) -> float:
    """Max relative difference of the bptt/fused gradients from probseq's autodiff ones."""
    tf = _tf()
    import probseq

    net = probseq.LSTMNetwork(spec.vocab, spec.hidden, spec.layers, seed=3)
    tokens = tf.constant(random_batches(spec)[0])
    dist = probseq.LSTMAutoregressive(net, num_steps=spec.steps)
    variables = list(net.trainable_variables)
    with tf.GradientTape() as tape:
        ref_loss = -tf.reduce_mean(dist.log_prob(tokens[:, :-1]))
    ref = tape.gradient(ref_loss, variables)
    worst = 0.0
    variants = ("core_graph", "fused_graph", "scan_graph", "bptt_graph", "bptt_t_graph")
    for variant in (*variants, "while_fb_graph", "bptt_fb_graph", "block_graph", "gil_graph"):
        with tf.GradientTape() as tape:
            if variant == "core_graph":
                loss = core_nll(net.params, tokens[:, :-1])
            elif variant == "block_graph":
                loss = block_nll(net.params, tokens[:, :-1])
            elif variant == "gil_graph":
                loss = gil_nll(net.params, tokens[:, :-1])
            else:
                recurrence = recurrence_for(variant, net.params)
                fold = "_fb" in variant
                loss = lstm_nll(net.params, tokens[:, :-1], recurrence, fold_bias=fold)
        grads = tape.gradient(loss, variables)
        diff = abs(float(loss) - float(ref_loss)) / abs(float(ref_loss))
        for g, r in zip(grads, ref, strict=True):
            g, r = tf.convert_to_tensor(g), tf.convert_to_tensor(r)
            diff = max(
                diff, float(tf.reduce_max(tf.abs(g - r)) / (tf.reduce_max(tf.abs(r)) + 1e-12))
            )
        print(f"  {variant:16s} max rel. diff from probseq autodiff: {diff:.2e}")
        worst = max(worst, diff)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="train_text8")
    parser.add_argument("--variants", default=None, help="comma list (default: all)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant per round")
    parser.add_argument("--threads", default=None, help="intra,inter op threads (e.g. 2,1)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check", action="store_true", help="check gradients first")
    args = parser.parse_args()
    tf = _tf()
    if args.threads:
        intra, inter = (int(x) for x in args.threads.split(","))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    spec = case_spec(args.case, args.quick)
    train = spec.kind == "train"
    default = {"train": TRAIN_VARIANTS, "eval": EVAL_VARIANTS, "sample": SAMPLE_VARIANTS}
    names = (args.variants or ",".join(default[spec.kind])).split(",")
    if args.check:
        check_gradients(spec)
    batches = [tf.constant(b) for b in random_batches(spec)]
    chars = spec.batch * spec.steps
    steps, compile_s, rates = {}, {}, {n: [] for n in names}
    cpu_rates = {n: [] for n in names}
    for name in names:
        t0 = time.perf_counter()
        if spec.kind == "sample":
            call = build_sampler(name, spec)
            steps[name] = lambda _, call=call: call()
        else:
            steps[name] = build_step(name, spec, train)
        steps[name](batches[0])
        compile_s[name] = time.perf_counter() - t0
        steps[name](batches[1])
        print(f"built {name:16s} first call {compile_s[name]:.1f} s", flush=True)
    for r in range(args.rounds):
        for name in names:
            count, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                steps[name](batches[count % len(batches)])
                count += 1
                if time.perf_counter() - t0 >= args.seconds:
                    break
            rates[name].append(count * chars / (time.perf_counter() - t0))
            cpu_rates[name].append(count * chars / (time.process_time() - c0))
        print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:,.0f}" for n in names), flush=True)
    base = statistics.median(rates[names[0]])
    keras = statistics.median(rates["keras"]) if "keras" in rates else None
    print(f"\n{spec.name} ({spec.layers}x{spec.hidden}, T={spec.steps}, B={spec.batch})")
    print(
        f"{'variant':16s} {'median':>10s} {'min':>10s} {'max':>10s}  vs {names[0]}  vs keras"
        "   chars/CPU-s"
    )
    for name in names:
        med = statistics.median(rates[name])
        vs_keras = f"{med / keras:6.2f}" if keras else "     -"
        print(
            f"{name:16s} {med:10,.0f} {min(rates[name]):10,.0f} {max(rates[name]):10,.0f}  "
            f"{med / base:6.2f}      {vs_keras}   {statistics.median(cpu_rates[name]):10,.0f}"
            f"   (first call {compile_s[name]:.1f} s)"
        )
    print(f"load average: {np.round(__import__('os').getloadavg(), 2).tolist()}")


if __name__ == "__main__":
    main()
