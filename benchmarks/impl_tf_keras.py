"""tf_keras peers for `benchmarks/run.py` (not run on its own): `tf_keras`, `tf_keras_xla`.

The model is the standard Keras character LM of the same shape as probseq's: one-hot
input (`tf.one_hot` in a `Lambda`, so the first LSTM's input kernel is `[V, 4H]` like
probseq's), `L` stacked `tf_keras.layers.LSTM(H, return_sequences=True)`, then
`Dense(V)` logits.

* Train: `model.compile(Adam(lr, global_clipnorm=clip), SparseCategoricalCrossentropy
  (from_logits=True), jit_compile=...)` and `model.fit` on a repeated `tf.data` dataset of
  pre-built batches; a Keras callback ticks the timer after every batch.
* Eval: `model.evaluate` on the same kind of dataset (ticks after every batch).
* Sample: the "Text generation with an RNN" tutorial's way: a one-step model (token and
  per-layer `[h, c]` in, logits and new state out), one `tf.function` call per generated
  character from a Python loop, `tf.random.categorical` for the draw.

`tf_keras_xla` is the same with `jit_compile=True` (compile / tf.function).
`tf_keras_threads` is `tf_keras` with probseq's recommended CPU thread settings (one
thread per op, one inter-op thread per core; `probseq.set_cpu_threads()`), a control
showing what those settings alone do to a standard Keras model.
"""

from __future__ import annotations

from benchmarks.common import CaseSpec, Timer, drive, random_batches, thread_settings

# variant -> (jit_compile, probseq's thread settings); `tf_keras_bf16` is `tf_keras` under
# the `mixed_bfloat16` policy (bf16 compute, fp32 variables; an error the Keras LSTM raises
# for bfloat16 is recorded in the row, not dropped).
VARIANTS = {
    "tf_keras": (False, False),
    "tf_keras_xla": (True, False),
    "tf_keras_threads": (False, True),
    "tf_keras_bf16": (False, False),
}


def build_model(spec: CaseSpec):
    """The teacher-forced Keras model: int tokens `[B, T]` -> logits `[B, T, V]`."""
    import tensorflow as tf
    import tf_keras

    tokens = tf_keras.Input(shape=(None,), dtype="int32")
    x = tf_keras.layers.Lambda(lambda t: tf.one_hot(t, spec.vocab))(tokens)
    for _ in range(spec.layers):
        x = tf_keras.layers.LSTM(spec.hidden, return_sequences=True)(x)
    logits = tf_keras.layers.Dense(spec.vocab)(x)
    return tf_keras.Model(tokens, logits)


def build_step_model(spec: CaseSpec):
    """One-step model: `[token [B, 1], h_0, c_0, ..., h_L-1, c_L-1]` -> `[logits, h_0, c_0,
    ...]`."""
    import tensorflow as tf
    import tf_keras

    token = tf_keras.Input(shape=(1,), dtype="int32")
    states = [tf_keras.Input(shape=(spec.hidden,)) for _ in range(2 * spec.layers)]
    x = tf_keras.layers.Lambda(lambda t: tf.one_hot(t, spec.vocab))(token)
    new_states = []
    for layer in range(spec.layers):
        x, h, c = tf_keras.layers.LSTM(spec.hidden, return_sequences=True, return_state=True)(
            x, initial_state=states[2 * layer : 2 * layer + 2]
        )
        new_states += [h, c]
    logits = tf_keras.layers.Dense(spec.vocab)(x[:, -1])
    return tf_keras.Model([token, *states], [logits, *new_states])


def sampler(spec: CaseSpec, compile_mode: str):
    """`sample() -> np.ndarray [B, T]`: a Python loop over time calling a one-step function.

    compile_mode: "eager" (no tf.function), "graph" or "xla".
    """
    import numpy as np
    import tensorflow as tf

    model = build_step_model(spec)

    def one_step(token, states):
        logits, *states = model([token, *states])
        token = tf.random.categorical(logits, 1, dtype=tf.int32)  # :: [B, 1]
        return token, states

    if compile_mode != "eager":
        one_step = tf.function(one_step, jit_compile=compile_mode == "xla")

    def sample():
        token = tf.zeros([spec.batch, 1], tf.int32)
        states = [tf.zeros([spec.batch, spec.hidden]) for _ in range(2 * spec.layers)]
        out = []
        for _ in range(spec.steps):
            token, states = one_step(token, states)
            out.append(token)
        return np.concatenate([t.numpy() for t in out], axis=1)

    return sample


def run(impl: str, spec: CaseSpec, timer: Timer) -> dict:
    """Benchmark variant `impl` on `spec` (the Keras policy restored afterwards)."""
    import tf_keras

    if impl != "tf_keras_bf16":
        return _run(impl, spec, timer)
    tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        result = _run(impl, spec, timer)
    finally:
        tf_keras.mixed_precision.set_global_policy("float32")
    result["notes"] += ", policy mixed_bfloat16"
    return result


def _run(impl: str, spec: CaseSpec, timer: Timer) -> dict:
    import tensorflow as tf
    import tf_keras

    jit, threads = VARIANTS[impl]
    if threads:  # kept as is when TensorFlow already runs (run.py --in-process)
        from probseq.nn.threads import use_probseq_threads

        use_probseq_threads()
    if spec.kind == "sample":
        result = drive(sampler(spec, "xla" if jit else "graph"), timer)
        result["notes"] = (
            f"per-step tf.function(jit_compile={jit}) in a Python loop, {thread_settings()}"
        )
        return result

    data = random_batches(spec)
    dataset = tf.data.Dataset.from_tensor_slices((data[..., :-1], data[..., 1:])).repeat()
    model = build_model(spec)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(spec.learning_rate, global_clipnorm=spec.clip_norm),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )

    class Tick(tf_keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if timer.tick():
                self.model.stop_training = True

        def on_test_batch_end(self, batch, logs=None):
            timer.tick()

    timer.start()
    if spec.kind == "train":
        model.fit(dataset, epochs=1, steps_per_epoch=10**9, callbacks=[Tick()], verbose=0)
    else:
        model.evaluate(dataset, steps=timer.calls_before_calibration, callbacks=[Tick()], verbose=0)
        model.evaluate(dataset, steps=timer.calls_remaining, callbacks=[Tick()], verbose=0)
    result = timer.result()
    method = "fit" if spec.kind == "train" else "evaluate"
    result["notes"] = f"model.{method}, jit_compile={jit}, {thread_settings()}"
    return result
