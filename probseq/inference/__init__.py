"""Fitting: MAP / maximum likelihood (and variational inference) for probseq models."""

from probseq.inference.callbacks import Callback, StepInfo
from probseq.inference.map import FitResult, GaussianPrior, fit_map, global_norm_clip

__all__ = ["Callback", "FitResult", "GaussianPrior", "StepInfo", "fit_map", "global_norm_clip"]
