"""Held-out metrics of a classifier's predictive probabilities: accuracy, NLL per example,
expected calibration error, and a reliability diagram."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from probseq.files import atomic_path

__all__ = ["calibration_bins", "classification_metrics", "reliability_diagram"]


def _check(probs, labels) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(
            f"probs must be [N, K] and labels [N], got {probs.shape} and {labels.shape}."
        )
    if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be integers in [0, {probs.shape[1]}).")
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("every row of probs must be a probability vector (sum 1).")
    return probs, labels


def calibration_bins(probs, labels, num_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width bins of the confidence (the top class's probability) on `[0, 1]`.

    Returns:
      `edges` `[num_bins + 1]`, and per bin `count`, `confidence` (mean top probability)
      and `accuracy` (fraction correct); empty bins have NaN means.
    """
    probs, labels = _check(probs, labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # bin b holds confidences in (edges[b], edges[b+1]] (the first bin also holds 0)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    count = np.bincount(index, minlength=num_bins)
    with np.errstate(invalid="ignore"):
        mean_conf = np.bincount(index, confidence, num_bins) / count
        mean_acc = np.bincount(index, correct.astype(np.float64), num_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": mean_acc}


def classification_metrics(probs, labels, num_bins: int = 15) -> dict[str, Any]:
    """`accuracy`, `nll` (mean `-log p(label)` per example, nats), `ece` (expected
    calibration error over `num_bins` equal-width confidence bins: `sum_b |B_b| / N *
    |accuracy_b - confidence_b|`), `num_examples` and `num_bins`, JSON-ready."""
    probs, labels = _check(probs, labels)
    bins = calibration_bins(probs, labels, num_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    ece = float(np.sum(bins["count"][filled] / labels.size * gaps))
    picked = probs[np.arange(labels.size), labels]
    return {
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "nll": float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float64).tiny)))),
        "ece": ece,
        "num_examples": int(labels.size),
        "num_bins": int(num_bins),
    }


def reliability_diagram(
    probs, labels, path: str | os.PathLike, *, num_bins: int = 15, title: str | None = None
) -> dict[str, Any]:
    """Write a reliability diagram (accuracy against confidence per bin, with the counts)
    as a PNG, atomically; returns the metrics it shows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    bins = calibration_bins(probs, labels, num_bins)
    metrics = classification_metrics(probs, labels, num_bins)
    centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
    width = 1.0 / num_bins
    figure = Figure(figsize=(5, 6))
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = bins["count"] > 0
    top.bar(centers[filled], bins["accuracy"][filled], width=width, edgecolor="k", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(
        (title + "\n" if title else "")
        + f"accuracy {metrics['accuracy']:.4f}, ECE {metrics['ece']:.4f} ({num_bins} bins)"
    )
    bottom.bar(centers, bins["count"], width=width, edgecolor="k")
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("examples")
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    return metrics
