"""`probseq.load(run_dir)`: a trained run as a Python object (distribution, sample, score).

A run directory written by `probseq train` (or an experiment script) holds the config,
the vocabulary and checkpoints. `load` rebuilds the network (MAP runs) or the mean-field
posterior (variational runs) from the newest checkpoint and returns a `TrainedModel`
whose methods give exactly what the command line gives:

* `model.sample_text(200, prime="The ", seed=1)` == `probseq sample RUN --length 200
  --prime "The " --seed 1`;
* `model.evaluate_text(text, mode="stream")` == `probseq evaluate RUN --text FILE
  --mode stream` (the CLI calls these methods);
* `model.distribution(num_steps, prime=...)` is the model as a `tfd.Distribution`;
* `model.export(out_dir)` writes a SavedModel that needs no probseq (`probseq.serving`).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from probseq.cli.config import TrainConfig
from probseq.cli.models import RunModel
from probseq.cli.rundir import RunDir, RunDirError
from probseq.cli.tasks import decode_until, encode_lines, line_metrics
from probseq.data import Vocabulary, load_corpus
from probseq.distributions import LSTMAutoregressive
from probseq.seeds import stateless_seed

tfd = tfp.distributions

__all__ = ["TrainedModel", "load"]


def load(run_dir: str | Path) -> TrainedModel:
    """Load a trained run directory (MAP or variational) from its newest checkpoint.

    Args:
      run_dir: a directory written by `probseq train`.

    Returns:
      A `TrainedModel`.

    Raises:
      RunDirError: the directory is missing, not a run, has no checkpoint, or its files
        are corrupt (the message says which).

    #### Examples

    ```python
    model = probseq.load("runs/shk")
    model.sample_text(100, prime="ROMEO: ", temperature=0.8, seed=1)
    model.evaluate_text(open("held_out.txt").read(), mode="stream")["bits_per_char"]
    dist = model.distribution(50, prime="The ")   # a tfd.Distribution over 50 tokens
    ```
    """
    rd = RunDir(run_dir)
    if not rd.path.exists():
        raise RunDirError(f"run directory {rd.path} does not exist.")
    config = rd.load_config()
    vocabulary = rd.load_vocabulary()
    model = RunModel(config, len(vocabulary))
    checkpoint = rd.restore(tf.train.Checkpoint(**model.checkpoint_items()), partial=True)
    return TrainedModel(rd.path, config, vocabulary, model, checkpoint)


@dataclasses.dataclass(eq=False)
class TrainedModel:
    """A trained run: config, vocabulary, network or posterior, and what to do with them.

    Attributes:
      path: the run directory.
      config: its `TrainConfig`.
      vocabulary: its `probseq.data.Vocabulary`.
      checkpoint: path prefix of the checkpoint the weights come from.
    """

    path: Path
    config: TrainConfig
    vocabulary: Vocabulary
    run_model: RunModel
    checkpoint: str

    @property
    def method(self) -> str:
        """`"map"` (a point estimate) or `"variational"` (a posterior over the weights)."""
        return self.config.method

    @property
    def network(self):
        """The `LSTMNetwork` (for a variational run: the template; its variables hold the
        initialization, the weights are in `surrogate`)."""
        return self.run_model.network

    @property
    def model(self) -> RunModel:
        """The network-and-posterior holder (the earlier `LoadedRun.model`)."""
        return self.run_model

    @property
    def surrogate(self):
        """The `MeanFieldPosterior` of a variational run, None for a MAP run."""
        return self.run_model.surrogate

    # ------------------------------------------------------------------- encoding
    def encode(self, text: str, *, on_unknown: str = "error", replacement=None) -> np.ndarray:
        """Token ids `[len(text)]` (int32) of `text` in the run's vocabulary."""
        return self.vocabulary.encode(text, on_unknown, replacement).astype(np.int32)

    def _prefix(self, prime: str | None):
        return self.encode(prime) if prime else None

    # --------------------------------------------------------------- distribution
    def distribution(
        self,
        num_steps: int,
        *,
        prime: str | None = None,
        temperature=None,
        num_draws: int | None = None,
        seed: int = 0,
    ) -> tfd.Distribution:
        """The trained model as a TFP distribution over `num_steps` token ids.

        A MAP run gives `LSTMAutoregressive(network, num_steps, prefix=ids(prime),
        temperature=temperature)` on the network's variables. A variational run gives the
        posterior predictive `p(x) ~= (1/S) sum_s p(x | w_s)` as a
        `tfd.MixtureSameFamily` with equal weights over `S = num_draws` weight draws
        `w_s ~ q` (default: the run's `eval_draws`), scored in one batched pass; the draws
        are the ones `evaluate_text(..., num_draws=S, seed=seed)` uses.

        Args:
          num_steps: Python int, tokens per sequence (after the prime).
          prime: optional text to condition on (its characters must be in the vocabulary).
          temperature: optional positive float (or tensor) dividing the logits.
          num_draws: variational runs: number of weight draws `S`.
          seed: variational runs: int seed of the weight draws.

        Returns:
          A `tfd.Distribution` with event shape `[num_steps]` (int32) and batch shape `[]`.
        """
        prefix = self._prefix(prime)
        if self.surrogate is None:
            if num_draws is not None:
                raise ValueError(f"num_draws is for variational runs; {self.path} is a MAP run.")
            return LSTMAutoregressive(
                self.network, num_steps, prefix=prefix, temperature=temperature
            )
        draws = self.posterior_draws(num_draws, seed)
        num = int(tf.nest.flatten(draws)[0].shape[0])
        components = LSTMAutoregressive(
            self.network, num_steps, prefix=prefix, temperature=temperature, params=draws
        )
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=tf.zeros([num])),
            components,
            name="PosteriorPredictive",
        )

    def posterior_draws(self, num_draws: int | None = None, seed: int = 0) -> dict:
        """`S` weight draws `w_s ~ q` (every leaf `[S] + core`) of a variational run, the
        draws `evaluate_text(num_draws=S, seed=seed)` scores with."""
        if self.surrogate is None:
            raise ValueError(f"{self.path} is a MAP run; it has no posterior to draw from.")
        num_draws = num_draws or self.config.eval_draws
        return self.surrogate.sample(int(num_draws), seed=stateless_seed((int(seed), 1)))

    # ------------------------------------------------------------------- sampling
    def sample_text(
        self, length: int, *, prime: str = "", temperature: float = 1.0, seed: int = 1
    ) -> str:
        """The prime followed by `length` sampled characters (`probseq sample`'s text).

        A variational run draws one weight sample `w ~ q`, then the text from `p(x | w)`:
        a draw from the posterior predictive. The same seed gives the same text.
        """
        return self.sample_texts(length, prime=prime, temperature=temperature, seed=seed)[0]

    def sample_texts(
        self,
        length: int,
        num_samples: int = 1,
        *,
        prime: str = "",
        temperature: float = 1.0,
        seed: int = 1,
    ) -> list[str]:
        """`num_samples` texts drawn together (`probseq sample --num-samples N`)."""
        _check_sampling(length, num_samples, temperature)
        if self.eos is not None:  # a line model: each text is one line, ended by its EOS
            length = min(length, self.config.max_line_length + 1)
        sampler = self._sampler(length, prime, float(temperature), num_samples)
        return [
            prime + decode_until(self.vocabulary, row, self.eos) for row in sampler([int(seed), 0])
        ]

    @functools.lru_cache(maxsize=8)  # noqa: B019 - one compiled sampler per setting
    def _sampler(self, length: int, prime: str, temperature: float, num_samples: int):
        return self.run_model.sampler(
            length,
            prefix=self._prefix(prime),
            temperature=temperature,
            num_samples=num_samples,
            eos=self.eos,
        )

    # ----------------------------------------------------------------- evaluation
    def evaluate_text(
        self,
        text: str,
        *,
        mode: str = "windows",
        num_steps: int | None = None,
        on_unknown: str = "error",
        replacement: str | None = None,
        num_draws: int | None = None,
        seed: int = 0,
        context: int = 0,
        dynamic=None,
        progress=None,
        jit_compile: bool | None = None,
    ) -> dict[str, Any]:
        """Held-out metrics of `text` (`probseq evaluate --text FILE`), a JSON-ready dict.

        Keys: `nll_nats_per_window`, `nll_nats_per_char`, `bits_per_char`, `perplexity`,
        `num_chars`, `mode`, `num_steps`, `num_unknown_skipped`; for a variational run the
        top-level numbers are the posterior predictive over `num_draws` draws (with
        `num_draws`, `seed`, `plug_in_bits_per_char`, `elbo_bound_bits_per_char`).

        Args:
          text: the text to score.
          mode: `"windows"` (non-overlapping windows of `num_steps` characters, each
            from a zero state), `"stream"` (the whole text as one sequence) or
            `"dynamic"` (a stream scored while a copy of the model learns from each
            segment after scoring it; settings `dynamic`, a
            `probseq.evaluation.DynamicSettings`; the run's model is not changed).
          num_steps: window length (default: the run's).
          on_unknown: `"error"`, `"skip"` or `"replace"` (with `replacement`; default a
            space) for characters outside the vocabulary.
          num_draws, seed: variational runs: posterior draws and their seed.
          context: windows mode: characters read before each window, not scored
            (`probseq.evaluation.evaluate`).
          progress: `progress(done_chars, total_chars)` (dynamic mode).
          jit_compile: compile the scoring with XLA (None: `evaluate`'s default per
            mode; `probseq.nn.measured.measured_xla` measures which is faster here).
        """
        if on_unknown == "replace" and replacement is None:
            replacement = " "
        if replacement is not None and replacement not in self.vocabulary:
            raise ValueError(
                f"the replacement {replacement!r} is not a symbol of the run's vocabulary "
                f"({len(self.vocabulary)} symbols); choose one of them."
            )
        if self.eos is not None:
            if context or mode == "dynamic":
                raise ValueError(
                    "context and dynamic evaluation apply to window models; a line model "
                    "scores lines."
                )
            return self._evaluate_lines(text, on_unknown, replacement, num_draws, seed)
        ids, num_unknown = self.vocabulary.encode(
            text, on_unknown, replacement, return_num_unknown=True
        )
        result = self.run_model.evaluate(
            ids,
            num_steps=num_steps or self.config.num_steps,
            mode=mode,
            num_draws=num_draws,
            seed=seed,
            num_train_chars=self._num_train_chars() if self.surrogate is not None else None,
            context=context,
            dynamic=dynamic,
            progress=progress,
            train_ids=self._dynamic_train_ids(dynamic) if mode == "dynamic" else None,
            jit_compile=jit_compile,
        )
        return self._with_provenance(result, num_unknown, on_unknown)

    def _dynamic_train_ids(self, dynamic):
        """RMS dynamic evaluation measures gradients on the end of the training split."""
        if dynamic is None or dynamic.method != "rms":
            return None
        needed = (dynamic.rms_segments + 1) * dynamic.segment_length + 1
        return self.vocabulary.encode(self.corpus().text("train")[-needed:])

    @property
    def eos(self) -> int | None:
        """The end token of a line model (`sequences="lines"`: the newline), else None."""
        if self.config.sequences != "lines":
            return None
        return self.vocabulary.id_of("\n")

    def _evaluate_lines(
        self, text: str, on_unknown: str, replacement, num_draws: int | None, seed: int
    ) -> dict[str, Any]:
        """Every non-empty line of `text`, each scored from a zero state with its end
        (for a variational run: the posterior predictive over `num_draws` draws)."""
        limit = self.config.max_line_length
        rows, num_unknown = encode_lines(self.vocabulary, text, limit, on_unknown, replacement)
        if not rows:
            raise ValueError("the text has no non-empty lines to score.")
        if num_draws is not None and self.surrogate is None:
            raise ValueError(f"num_draws is for variational runs; {self.path} is a MAP run.")
        result = line_metrics(
            self.network,
            rows,
            self.eos,
            limit + 1,
            surrogate=self.surrogate,
            num_draws=num_draws or self.config.eval_draws,
            seed=seed,
        )
        return self._with_provenance(result, num_unknown, on_unknown)

    def _with_provenance(self, result: dict, num_unknown: int, on_unknown: str) -> dict:
        """`result` with what it was computed from: run, checkpoint, unknown characters."""
        result.update(
            run_dir=str(self.path),
            checkpoint=Path(self.checkpoint).name,
            num_unknown_skipped=int(num_unknown),
            on_unknown=on_unknown,
            method=self.method,
        )
        return result

    def _num_train_chars(self) -> int:
        """Training characters (the ELBO bound spreads the KL over them)."""
        return self.corpus().split_sizes["train"]

    @functools.cache  # noqa: B019 - the corpus is loaded at most once per model
    def corpus(self):
        """The run's training corpus (`probseq.data.Corpus`: splits, ids, text)."""
        return load_corpus(self.config.corpus, cache_dir=self.config.cache_dir)

    # --------------------------------------------------------------------- export
    def export(self, out_dir: str | Path, *, num_draws: int | None = None, seed: int = 0):
        """Write a TensorFlow SavedModel that samples and scores text without probseq.

        See `probseq.serving.export_saved_model`; returns its description dict.
        """
        from probseq.serving import export_saved_model

        return export_saved_model(self, out_dir, num_draws=num_draws, seed=seed)

    def __repr__(self) -> str:
        return (
            f"TrainedModel({str(self.path)!r}, method={self.method!r}, "
            f"network={self.network!r}, checkpoint={Path(self.checkpoint).name!r})"
        )


def _check_sampling(length: int, num_samples: int, temperature: float) -> None:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be an integer >= 1, got {length!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
