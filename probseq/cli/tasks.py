"""What a run trains on: fixed-length windows of a text, or one sequence per line.

`TrainConfig.sequences` chooses the task; `train`, `probseq evaluate` / `sample` and
`probseq.load` ask the task for the distribution, the batches and the held-out metrics,
so both kinds of runs share one training loop.

* `"windows"` (default): random `num_steps`-character windows of the training text, each
  scored from a zero state (the tutorial's setting); held-out metrics per window and per
  character (`probseq.evaluation.evaluate`).
* `"streams"`: truncated backpropagation through time (char-rnn style): the training
  text is cut into `batch_size` contiguous streams (`probseq.data.contiguous_batches`,
  in order), each batch is the next `num_steps` characters of every stream, and the
  state at the end of a batch starts the next one (reset to zero when an epoch starts
  over). The carried state is a checkpointed variable, so a resumed run continues with
  the same batches and the same state. Held-out metrics as for windows.
* `"lines"`: every non-empty line is one sequence that ends with an end token, the
  newline (which no line contains), so bits per character count the newline as one
  character of every line. Lines longer than `max_line_length` are cut there (and then
  scored without their end). Batches group lines of similar length
  (`probseq.data.bucketed_batches`, seeded and resumable); held-out metrics per line and
  per character (`probseq.evaluation.evaluate_sequences`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from probseq.cli.config import ConfigError, TrainConfig
from probseq.data import (
    bucketed_batches,
    contiguous_batches,
    num_batches_per_epoch,
    parse_sequences,
    random_windows,
)
from probseq.distributions import LSTMAutoregressive
from probseq.distributions.kernel import token_log_probs
from probseq.evaluation import evaluate_sequences
from probseq.evaluation._kernels import window_log_probs
from probseq.nn import cell_initial_state, dropout_masks

__all__ = [
    "LinesTask",
    "StreamsTask",
    "WindowsTask",
    "decode_until",
    "encode_lines",
    "line_metrics",
    "make_task",
]


class WindowsTask:
    """Fixed-length windows of a text (see the module docstring)."""

    kind = "windows"
    eos = None
    draws_log_likelihood_fn = None  # the distribution's log_prob serves both fits

    def __init__(self, config: TrainConfig, corpus, network):
        self.config, self.network = config, network
        self.train_ids = corpus.ids("train")
        self.valid_ids = corpus.ids("valid")
        self.num_examples = max(len(self.train_ids) // config.num_steps, 1)
        self.chars_per_example = float(config.num_steps)
        self.num_train_chars = len(self.train_ids)
        # The distribution's own log_prob (in the run's precision) unless dropout masks.
        self.log_likelihood_fn = self._window_log_likelihood if config.dropout else None

    def checkpoint_items(self) -> dict[str, Any]:
        """What the task adds to the run's checkpoints (nothing for windows)."""
        return {}

    def distribution(self) -> LSTMAutoregressive:
        return LSTMAutoregressive(
            self.network, self.config.num_steps, precision=self.config.precision
        )

    def _window_log_likelihood(self, batch, seed):
        """`log p(window)` as the distribution scores it (the evaluation kernel), with
        locked dropout masks drawn from the step's `seed`."""
        network = self.network
        tokens = tf.convert_to_tensor(batch, tf.int32)
        zero = cell_initial_state(network.params, tf.shape(tokens)[:1], cell=network.cell_type)
        return window_log_probs(
            network.params,
            tokens,
            None,
            cell=network.cell_type,
            compute_dtype=self.config.precision,
            masks=dropout_masks(self.config.dropout, zero, seed),
        )

    def dataset(self, start_step: int):
        config = self.config
        return random_windows(
            self.train_ids, config.num_steps, config.batch_size, seed=config.seed,
            start_batch=start_step,
        )  # fmt: skip

    def validation_ids(self, max_chars: int | None):
        if max_chars is None:
            return self.valid_ids
        return self.valid_ids[: max(max_chars, self.config.num_steps)]


class _CarriedState(tf.Module):
    """The recurrent state carried from one training batch to the next (checkpointed)."""

    def __init__(self, network, batch_size: int):
        super().__init__(name="carried_state")
        zero = cell_initial_state(network.params, [batch_size], cell=network.cell_type)
        self.layers = [
            [tf.Variable(t, trainable=False, name=f"layer_{i}_{j}") for j, t in enumerate(layer)]
            for i, layer in enumerate(zero)
        ]
        self._types = [type(layer) for layer in zero]

    def read(self, reset: tf.Tensor) -> tuple:
        """The carried state, zeros where `reset` (a bool scalar, or `[B]` per stream)."""
        keep = 1.0 - tf.cast(reset, self.layers[0][0].dtype)
        keep = tf.reshape(keep, [-1, 1]) if keep.shape.rank == 1 else keep
        return tuple(
            kind(*[v * keep for v in layer])
            for kind, layer in zip(self._types, self.layers, strict=True)
        )

    def write(self, state) -> None:
        for layer, new in zip(self.layers, state, strict=True):
            for variable, value in zip(layer, new, strict=True):
                variable.assign(tf.stop_gradient(value))


class StreamsTask(WindowsTask):
    """Truncated BPTT over contiguous streams of the training text (module docstring)."""

    kind = "streams"

    def __init__(self, config: TrainConfig, corpus, network):
        super().__init__(config, corpus, network)
        self.batches_per_epoch = num_batches_per_epoch(
            len(self.train_ids), config.num_steps, config.batch_size
        )
        if self.batches_per_epoch < 1:
            raise ConfigError(
                f"sequences='streams': the training split ({len(self.train_ids)} characters) "
                f"is shorter than one batch of batch_size={config.batch_size} streams of "
                f"num_steps={config.num_steps} (+1)."
            )
        self.carried = _CarriedState(network, config.batch_size)
        self.log_likelihood_fn = self._stream_log_likelihood

    def checkpoint_items(self) -> dict[str, Any]:
        return {"carried_state": self.carried}

    def dataset(self, start_step: int):
        epoch, position = divmod(start_step, self.batches_per_epoch)
        config = self.config
        return contiguous_batches(
            self.train_ids, config.num_steps, config.batch_size, seed=config.seed,
            shuffle=False, start_epoch=epoch, start_batch=position,
        )  # fmt: skip

    def _stream_log_likelihood(self, batch, seed):
        """`[B]` log-likelihoods of each stream's next `num_steps` characters given the
        carried state (then stored for the next batch)."""
        network = self.network
        windows = batch["windows"]  # :: [B, T + 1]
        reset = tf.fill(tf.shape(windows)[:1], tf.equal(batch["batch"], 0))  # :: [B]
        if self.config.state_reset:  # per stream, from the step's seed (resumable)
            draw = tf.random.stateless_uniform(
                tf.shape(reset), seed=tf.random.experimental.stateless_fold_in(seed, 7)
            )
            reset = reset | (draw < self.config.state_reset)
        state = self.carried.read(reset)
        log_probs, final = token_log_probs(
            network.params,
            windows[:, :-1],
            tf.transpose(windows[:, 1:]),
            state,
            cell=network.cell_type,
            masks=dropout_masks(self.config.dropout, state, seed),
            compute_dtype=self.config.precision,
        )  # :: [T, B]
        self.carried.write(final)
        return tf.reduce_sum(log_probs, axis=0)


class LinesTask:
    """One sequence per line, ending with the newline as its end token."""

    kind = "lines"

    def __init__(self, config: TrainConfig, corpus, network):
        vocabulary = corpus.vocabulary
        if "\n" not in vocabulary:
            raise ConfigError(
                f"sequences='lines' needs a corpus with line breaks; {config.corpus!r} has none."
            )
        self.config, self.network = config, network
        self.eos = vocabulary.id_of("\n")
        self.num_steps = config.max_line_length + 1  # the longest line and its end token
        self.rows = {
            split: encode_lines(vocabulary, corpus.text(split), config.max_line_length)[0]
            for split in ("train", "valid")
        }
        if not self.rows["train"] or not self.rows["valid"]:
            raise ConfigError(f"corpus {config.corpus!r} has no lines in its train or valid split.")
        self.num_examples = len(self.rows["train"])
        self.chars_per_example = float(np.mean([row.size + 1 for row in self.rows["train"]]))
        self.num_train_chars = int(sum(row.size + 1 for row in self.rows["train"]))

    def distribution(self) -> LSTMAutoregressive:
        return LSTMAutoregressive(self.network, self.num_steps, eos=self.eos)

    def checkpoint_items(self) -> dict[str, Any]:
        return {}

    def log_likelihood_fn(self, batch):
        """MAP: `batch -> [B]` log p(line) on the network's variables."""
        lines = LSTMAutoregressive(
            self.network, self.num_steps, eos=self.eos, lengths=batch["lengths"]
        )
        return lines.log_prob(batch["tokens"])

    def draws_log_likelihood_fn(self, batch, params):
        """Variational: `(batch, params) -> [K, B]` log p(line_b | w_k) for `K` draws
        (leaves `[K] + core`, given a `[K, 1]` batch dim against the `B` lines)."""
        lines = LSTMAutoregressive(
            self.network,
            self.num_steps,
            eos=self.eos,
            lengths=batch["lengths"],
            params=tf.nest.map_structure(lambda p: p[:, None], params),
        )
        return lines.log_prob(batch["tokens"])

    def dataset(self, start_step: int):
        return bucketed_batches(
            self.rows["train"], self.config.batch_size, seed=self.config.seed,
            start_batch=start_step,
        )  # fmt: skip

    def validation_rows(self, max_chars: int | None) -> list[np.ndarray]:
        rows = self.rows["valid"]
        if max_chars is None:
            return rows
        total, chosen = 0, []
        for row in rows:
            chosen.append(row)
            total += row.size + 1
            if total >= max_chars:
                break
        return chosen


def make_task(config: TrainConfig, corpus, network) -> WindowsTask | LinesTask:
    """The task `config.sequences` names."""
    kinds = {"windows": WindowsTask, "streams": StreamsTask, "lines": LinesTask}
    return kinds[config.sequences](config, corpus, network)


def encode_lines(
    vocabulary, text: str, max_length: int, on_unknown: str = "error", replacement=None
) -> tuple[list[np.ndarray], int]:
    """Token ids of every non-empty line of `text` (cut at `max_length` characters), and
    the number of unknown characters skipped or replaced (`Vocabulary.encode`'s
    `on_unknown`); a line left empty by skipping is dropped."""
    rows, num_unknown = [], 0
    for line in parse_sequences(text):
        ids, unknown = vocabulary.encode(
            line[:max_length], on_unknown, replacement, return_num_unknown=True
        )
        num_unknown += int(unknown)
        if ids.size:
            rows.append(ids.astype(np.int32))
    return rows, num_unknown


def decode_until(vocabulary, ids, eos: int | None) -> str:
    """The text of `ids`, up to (not including) the first `eos`."""
    ids = np.asarray(ids)
    if eos is not None and np.any(ids == eos):
        ids = ids[: int(np.argmax(ids == eos))]
    return vocabulary.decode(ids)


def line_metrics(
    network, rows, eos: int, num_steps: int, *, surrogate=None, num_draws=None, seed=0
) -> dict[str, Any]:
    """Held-out metrics of lines as a JSON-ready dict (the keys of a windows evaluation
    where they mean the same; `nll_nats_per_line` instead of per window).

    With a `surrogate` (a variational run): the posterior predictive over `num_draws`
    weight draws seeded by `(seed, 1)` (as for windows), with `num_draws`, `seed` and
    the plug-in value at the posterior mean (`plug_in_bits_per_char`); there is no ELBO
    bound for lines (`elbo_bound_bits_per_char` is None).
    """
    params = None
    if surrogate is not None:
        params = surrogate.sample(num_draws, seed=(seed, 1))
    result = evaluate_sequences(network, rows, eos=eos, num_steps=num_steps, params=params)
    out = {
        "mode": "lines",
        "num_lines": result.num_sequences,
        "num_chars": result.num_tokens,
        "eos_counted_as_char": True,
        "nll_nats_per_line": result.nll_nats_per_sequence,
        "nll_nats_per_char": result.nll_nats_per_token,
        "bits_per_char": result.bits_per_token,
        "perplexity": math.exp(result.nll_nats_per_token),
        "max_line_length": num_steps - 1,
    }
    if surrogate is not None:
        plug_in = evaluate_sequences(
            network, rows, eos=eos, num_steps=num_steps, params=surrogate.mean()
        )
        out.update(
            method="variational",
            num_draws=num_draws,
            seed=[seed, 1],
            plug_in_bits_per_char=plug_in.bits_per_token,
            elbo_bound_bits_per_char=None,
        )
    return out
