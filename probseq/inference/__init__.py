"""Fitting: MAP / maximum likelihood (and variational inference) for probseq models."""

from probseq.inference.callbacks import Callback, StepInfo
from probseq.inference.map import FitResult, fit_map, global_norm_clip
from probseq.inference.priors import GaussianPrior, ScaleMixturePrior, prior_distribution
from probseq.inference.schedules import warmup_cosine
from probseq.inference.surrogate import MeanFieldPosterior, stateless_seed
from probseq.inference.variational import (
    ELBOTerms,
    VariationalFitResult,
    elbo_terms,
    fit_variational,
    joint_distribution,
    kl_weight,
)

__all__ = [
    "Callback",
    "ELBOTerms",
    "FitResult",
    "GaussianPrior",
    "MeanFieldPosterior",
    "ScaleMixturePrior",
    "StepInfo",
    "VariationalFitResult",
    "elbo_terms",
    "fit_map",
    "fit_variational",
    "global_norm_clip",
    "joint_distribution",
    "kl_weight",
    "prior_distribution",
    "stateless_seed",
    "warmup_cosine",
]
