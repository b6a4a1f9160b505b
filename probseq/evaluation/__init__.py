"""Held-out evaluation: NLL per window and per character, bits/char, perplexity.

`evaluate(model, ids)` scores a token text under an LSTM sequence model, either as
independent windows from a zero state (the text8 tutorial's metric) or as one stream
carrying the LSTM state across the text, or dynamically (`mode="dynamic"`: the model
learns from each segment after scoring it, `dynamic_evaluate`); params with a leading
draw dim give per-draw pointwise log-likelihoods and the Monte Carlo posterior predictive.
"""

from probseq.evaluation._kernels import stream_log_prob
from probseq.evaluation.arviz_io import compare_models, elpd, lpd, to_inference_data
from probseq.evaluation.classification import (
    calibration_bins,
    classification_metrics,
    reliability_diagram,
)
from probseq.evaluation.dynamic import DynamicSettings, dynamic_evaluate
from probseq.evaluation.evaluate import evaluate
from probseq.evaluation.metrics import bits_per_char, log_mean_exp, nats_to_bits, perplexity
from probseq.evaluation.posterior import PosteriorEvaluation, posterior_predictive, weight_summaries
from probseq.evaluation.result import EvaluationResult
from probseq.evaluation.sequences import SequenceEvaluation, evaluate_sequences

__all__ = [
    "DynamicSettings",
    "dynamic_evaluate",
    "stream_log_prob",
    "EvaluationResult",
    "SequenceEvaluation",
    "evaluate_sequences",
    "PosteriorEvaluation",
    "bits_per_char",
    "calibration_bins",
    "classification_metrics",
    "compare_models",
    "elpd",
    "evaluate",
    "log_mean_exp",
    "lpd",
    "nats_to_bits",
    "perplexity",
    "reliability_diagram",
    "posterior_predictive",
    "to_inference_data",
    "weight_summaries",
]
