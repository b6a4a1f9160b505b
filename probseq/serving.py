"""Export a trained run as a TensorFlow SavedModel that serves without probseq.

```python
m = tf.saved_model.load(OUT_DIR)          # TensorFlow only; probseq need not be installed
m.sample(prime=tf.constant(["The ", "ROMEO:"]), length=tf.constant(200),
         temperature=tf.constant(0.8), seed=tf.constant([1, 0]))
# ==> tf.string [2]: each prime followed by 200 sampled characters
m.log_prob(text=tf.constant(["To be, or not to be"]))
# ==> float32 [1]: nats of each whole text, scored as one stream (state carried)
```

Contract (tested):

* `sample(prime, length, temperature, seed)`: for every prime, the text `probseq sample
  RUN --prime P --length L --temperature T --seed S` prints, with `seed=[S, 0]` (the CLI's
  integer seed `S` is the stateless pair `[S, 0]`). Each prime is sampled on its own with
  that seed, so a text does not depend on the other primes in the call.
* `log_prob(text)`: nats per text, `-num_chars * nll_nats_per_char` of `probseq evaluate
  RUN --text FILE --mode stream` (relative 1e-4).
* A character outside the run's vocabulary in a prime or a text raises
  `InvalidArgumentError` naming the characters.
* MAP runs export the point estimate. Variational runs export the posterior predictive:
  `sample` draws one weight sample per call from the mean-field posterior (as `probseq
  sample`), and `log_prob` is `log (1/S) sum_s p(text | w_s)` over `S` weight draws fixed
  at export time (`num_draws`, `seed`: the draws of `probseq evaluate --draws S --seed
  SEED`). The SavedModel's `info` function returns these facts as strings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from probseq.distributions import LSTMAutoregressive
from probseq.evaluation import stream_log_prob
from probseq.files import atomic_path

if TYPE_CHECKING:
    from probseq.trained import TrainedModel

__all__ = ["export_saved_model"]


class _TextModel(tf.Module):
    """What the SavedModel holds: the weights, the vocabulary tables and two functions."""

    def __init__(self, model: TrainedModel, num_draws: int | None, seed: int):
        super().__init__(name="probseq_text_model")
        self._run_model = model.run_model
        self.network = model.network
        self.surrogate = model.surrogate
        # A line model (`sequences="lines"`): every string is one line, ended by EOS.
        self._eos = model.eos
        self._max_line_length = model.config.max_line_length
        symbols = list(model.vocabulary.symbols)
        codes = [ord(symbol) for symbol in symbols]
        self.symbols = tf.constant(symbols, tf.string)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(codes, tf.int32), tf.range(len(codes), dtype=tf.int32)
            ),
            default_value=-1,
        )
        if self.surrogate is None:
            self.scoring_params = tf.nest.map_structure(tf.convert_to_tensor, self.network.params)
            description = "MAP point estimate"
            num_draws = None
        else:
            num_draws = int(num_draws or model.config.eval_draws)
            self.scoring_params = model.posterior_draws(num_draws, seed)
            description = (
                f"variational posterior predictive: log_prob over {num_draws} weight draws "
                f"(seed {seed}, as `probseq evaluate --draws {num_draws} --seed {seed}`); "
                "sample draws one weight sample per call (as `probseq sample`)"
            )
        if self._eos is not None:
            description += (
                f"; a line model: sample gives one line each (ended by the model, at most "
                f"{self._max_line_length} characters), log_prob scores each string as one "
                "line with its end"
            )
        facts = {
            "description": description,
            "line_model": self._eos is not None,
            "method": model.method,
            "num_draws": num_draws,
            "draws_seed": None if num_draws is None else seed,
            "vocab_size": len(symbols),
            "network": repr(model.network),
            "run_dir": str(model.path),
            "checkpoint": Path(model.checkpoint).name,
        }
        self._facts_json = tf.constant(json.dumps(facts, sort_keys=True))

    def _ids(self, text: tf.Tensor, what: str) -> tf.Tensor:
        """int32 ids `[N]` of one string; an error naming characters outside the vocabulary."""
        codes = tf.strings.unicode_decode(text, "UTF-8")
        ids = self.table.lookup(codes)
        unknown = tf.strings.unicode_encode(tf.boolean_mask(codes, ids < 0), "UTF-8")
        check = tf.debugging.Assert(
            tf.reduce_all(ids >= 0),
            [f"{what} has characters outside the vocabulary of the model:", unknown],
            summarize=50,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="prime"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([2], tf.int32, name="seed"),
        ]
    )
    def sample(self, prime, length, temperature, seed):
        """One text per prime: the prime followed by `length` sampled characters."""
        checks = [
            tf.debugging.assert_positive(length, message="length must be >= 1"),
            tf.debugging.assert_positive(temperature, message="temperature must be > 0"),
        ]
        with tf.control_dependencies(checks):
            length = tf.identity(length)

        if self._eos is not None:  # one line: at most the line length and its end
            length = tf.minimum(length, self._max_line_length + 1)

        def one(text):
            ids = self._ids(text, "prime")

            def draw(prefix):
                return self._run_model.sample_ids(
                    length, seed, prefix=prefix, temperature=temperature, eos=self._eos
                )[0]

            tokens = tf.cond(tf.size(ids) > 0, lambda: draw(ids), lambda: draw(None))
            if self._eos is not None:  # the line, without its end and the padding after it
                ended = tf.equal(tokens, self._eos)
                stop = tf.where(
                    tf.reduce_any(ended), tf.argmax(ended, output_type=tf.int32), tf.size(tokens)
                )
                tokens = tokens[:stop]
            return text + tf.strings.reduce_join(tf.gather(self.symbols, tokens))

        return tf.map_fn(one, prime, fn_output_signature=tf.TensorSpec([], tf.string))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def log_prob(self, text):
        """Nats of each text, scored as one stream from the start state (state carried);
        for a line model, of each string as one line with its end (as `probseq evaluate`
        scores the lines of a text)."""
        if self._eos is not None:
            return tf.map_fn(
                self._line_log_prob, text, fn_output_signature=tf.TensorSpec([], tf.float32)
            )

        def one(text):
            ids = self._ids(text, "text")
            check = tf.debugging.assert_positive(
                tf.size(ids), message="text must hold at least one character"
            )
            with tf.control_dependencies([check]):
                totals = stream_log_prob(
                    self.scoring_params, ids, tf.constant(1.0), cell=self.network.cell_type
                )
            if self.surrogate is None:
                return totals
            draws = tf.cast(tf.shape(totals)[0], totals.dtype)
            return tf.reduce_logsumexp(totals) - tf.math.log(draws)

        return tf.map_fn(one, text, fn_output_signature=tf.TensorSpec([], tf.float32))

    def _line_log_prob(self, text):
        """`log p(line, end)` of one string (a trailing newline is dropped; a line longer
        than the model's is cut there, as `probseq evaluate` does)."""
        text = tf.strings.regex_replace(text, "\n$", "")
        ids = self._ids(text, "text")
        checks = [
            tf.debugging.assert_positive(tf.size(ids), message="a line must not be empty"),
            tf.debugging.assert_equal(
                tf.reduce_any(tf.equal(ids, self._eos)),
                False,
                message="a line model scores one line per string; this one holds a newline",
            ),
        ]
        with tf.control_dependencies(checks):
            ids = ids[: self._max_line_length]
        num_steps = self._max_line_length + 1
        tokens = tf.concat([ids, tf.fill([num_steps - tf.size(ids)], self._eos)], 0)[None]
        params = self.scoring_params
        if self.surrogate is not None:  # draws [S] + core against one line: [S, 1]
            params = tf.nest.map_structure(lambda p: p[:, None], params)
        lines = LSTMAutoregressive(
            self.network, num_steps, eos=self._eos, lengths=tf.size(ids)[None], params=params
        )
        log_p = lines.log_prob(tokens)  # :: [1] or [S, 1]
        if self.surrogate is None:
            return log_p[0]
        draws = tf.cast(tf.shape(log_p)[0], log_p.dtype)
        return tf.reduce_logsumexp(log_p[:, 0]) - tf.math.log(draws)

    @tf.function(input_signature=[])
    def info(self):
        """What was exported (method, draws, vocabulary size, source run) as JSON."""
        return self._facts_json


def export_saved_model(
    model: TrainedModel, out_dir: str | os.PathLike, *, num_draws: int | None = None, seed=0
) -> dict[str, Any]:
    """Write `model` as a SavedModel with `sample`, `log_prob` and `info` (module docstring).

    Args:
      model: a `TrainedModel` (`probseq.load(run_dir)`).
      out_dir: a new or empty directory.
      num_draws: variational runs: weight draws behind `log_prob` (default: the run's
        `eval_draws`). Not allowed for MAP runs.
      seed: variational runs: int seed of those draws.

    Returns:
      The facts stored in the SavedModel (`description`, `method`, `num_draws`, ...).

    Raises:
      FileExistsError: `out_dir` exists and is not empty (nothing is overwritten).
      ValueError: `num_draws` for a MAP run.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory; choose a new one.")
    if num_draws is not None and model.surrogate is None:
        raise ValueError(f"--draws is for variational runs; {model.path} is a MAP run.")
    module = _TextModel(model, num_draws, int(seed))
    # Trace once here so errors surface before anything is written.
    module.sample.get_concrete_function()
    module.log_prob.get_concrete_function()
    with atomic_path(out) as tmp:  # interrupted or failed: no half-written SavedModel
        tf.saved_model.save(
            module,
            str(tmp),
            signatures={
                "sample": module.sample.get_concrete_function(),
                "log_prob": module.log_prob.get_concrete_function(),
            },
        )
    return json.loads(module.info().numpy().decode())
