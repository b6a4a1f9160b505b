"""The model of a run: a point estimate (MAP) or a variational posterior over its weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from probseq.cli.config import TrainConfig
from probseq.distributions import LSTMAutoregressive
from probseq.evaluation import evaluate, posterior_predictive
from probseq.inference import GaussianPrior, MeanFieldPosterior
from probseq.nn import LSTMNetwork

__all__ = ["RunModel"]

_METRICS = (
    "nll_nats_per_window",
    "nll_nats_per_char",
    "bits_per_char",
    "perplexity",
    "num_chars",
    "num_windows",
    "mode",
    "num_steps",
    "context",
)


class RunModel:
    """Network (and, for `method="variational"`, its mean-field posterior) of a run.

    Args:
      config: the run's config (sizes, seed, method, variational settings).
      vocab_size: number of symbols.
    """

    def __init__(self, config: TrainConfig, vocab_size: int):
        self.config = config
        self.network = LSTMNetwork(
            vocab_size,
            config.hidden_size,
            config.num_layers,
            seed=(config.seed, 0),
            cell=config.cell,
        )
        self.surrogate = None
        if config.method == "variational":
            self.surrogate = MeanFieldPosterior(
                self.network.params,
                initial_scale=config.posterior_init_scale,
                cell=self.network.cell_type,
            )

    @property
    def variational(self) -> bool:
        return self.surrogate is not None

    @property
    def prior(self) -> GaussianPrior | None:
        scale = self.config.prior_scale
        return None if scale is None else GaussianPrior(scale)

    def checkpoint_items(self) -> dict[str, tf.Module]:
        """Objects saved in (and restored from) the run's checkpoints."""
        items: dict[str, tf.Module] = {"network": self.network}
        if self.surrogate is not None:
            items["surrogate"] = self.surrogate
        return items

    @property
    def trainable_variables(self):
        """The variables the optimizer updates."""
        module = self.surrogate if self.surrogate is not None else self.network
        return module.trainable_variables

    def evaluate(
        self,
        ids: np.ndarray,
        *,
        num_steps: int,
        mode: str = "windows",
        num_draws: int | None = None,
        seed: int = 0,
        num_train_chars: int | None = None,
        context: int = 0,
        dynamic=None,
        progress=None,
        train_ids=None,
        jit_compile: bool | None = None,
    ) -> dict[str, Any]:
        """Held-out metrics as a JSON-ready dict (posterior predictive for VI runs).

        The top-level `bits_per_char`, `nll_nats_per_char`, ... are the plug-in values of a
        point estimate, or the Monte Carlo posterior predictive of a variational run (with
        `num_draws`, `seed`, `plug_in_bits_per_char` and `elbo_bound_bits_per_char`).
        `mode="dynamic"` (settings `dynamic`, a `DynamicSettings`) adapts a copy of the
        weights (a variational run's: the posterior mean) and reports `weights`.
        """
        if mode == "dynamic":
            params = None if self.surrogate is None else self.surrogate.mean()
            out = evaluate(
                self.network,
                ids,
                num_steps=num_steps,
                mode="dynamic",
                dynamic=dynamic,
                params=params,
                progress=progress,
                train_ids=train_ids,
                jit_compile=jit_compile,
            ).as_dict()
            out["weights"] = "MAP" if self.surrogate is None else "posterior mean"
            return out
        if self.surrogate is None:
            return evaluate(
                self.network,
                ids,
                num_steps=num_steps,
                mode=mode,
                context=context,
                jit_compile=jit_compile,
            ).as_dict()
        draws = num_draws or self.config.eval_draws
        train_examples = None if num_train_chars is None else num_train_chars // num_steps
        result = posterior_predictive(
            self.surrogate,
            ids,
            num_draws=draws,
            seed=(seed, 1),
            num_steps=num_steps,
            mode=mode,
            prior=self.prior if train_examples else None,
            num_train_examples=train_examples,
            train_num_steps=self.config.num_steps if train_examples else None,
            context=context,
            jit_compile=jit_compile,
        )
        out = result.as_dict()
        out.update({key: out["predictive"][key] for key in _METRICS})
        out["seed"] = [seed, 1]
        return out

    def sampler(
        self, num_steps: int, *, prefix=None, temperature=None, num_samples: int = 1, eos=None
    ):
        """A compiled `seed -> int32 [num_samples, num_steps]` sampler (`sample_ids`)."""

        @tf.function
        def sample(seed):
            return self.sample_ids(
                num_steps,
                seed,
                prefix=prefix,
                temperature=temperature,
                num_samples=num_samples,
                eos=eos,
            )

        return lambda seed: sample(tf.constant(seed, tf.int32)).numpy()

    def sample_ids(
        self, length, seed, *, prefix=None, temperature=None, num_samples: int = 1, eos=None
    ):
        """`num_samples` sequences of `length` token ids, int32 `[num_samples, length]`.

        A point estimate samples from `p(x | w_map)`; a variational run draws one weight
        sample per sequence, `w ~ q`, then `x ~ p(x | w)`: the posterior predictive. The
        stateless `seed` (int32 `[2]`) splits into a weight seed and a token seed.
        `length` may be a tensor (the exported SavedModel's input). With `eos`, each
        sequence ends at its first EOS (EOS padding after it).
        """
        weight_seed, token_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if self.surrogate is None:
            dist = LSTMAutoregressive(
                self.network, 1, prefix=prefix, temperature=temperature, eos=eos
            )
            return dist.sample_with_length(length, [num_samples], seed=token_seed)
        params = self.surrogate.sample(num_samples, seed=weight_seed)
        dist = LSTMAutoregressive(
            self.network, 1, prefix=prefix, temperature=temperature, params=params, eos=eos
        )
        return dist.sample_with_length(length, seed=token_seed)
