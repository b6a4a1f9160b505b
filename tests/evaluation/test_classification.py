"""Classification metrics (issue 13): accuracy, NLL, ECE with 15 equal-width bins, and the
reliability diagram, checked on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from probseq.evaluation import calibration_bins, classification_metrics, reliability_diagram


def test_metrics_on_a_hand_computed_case():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    m = classification_metrics(probs, labels, num_bins=15)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["nll"] == pytest.approx(-np.mean(np.log([0.9, 0.2, 0.7, 0.45])))
    # bins of width 1/15: 0.9 -> (0.8667, 0.9333], 0.8 -> (0.7333, 0.8], 0.7 -> (0.6667,
    # 0.7333], 0.55 -> (0.5333, 0.6]; each alone: |acc - conf| = 0.1, 0.8, 0.3, 0.55
    assert m["ece"] == pytest.approx((0.1 + 0.8 + 0.3 + 0.55) / 4)
    bins = calibration_bins(probs, labels, 15)
    assert bins["count"].sum() == 4 and np.isnan(bins["accuracy"][0])


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200_000)
    correct = rng.uniform(size=confidence.size) < confidence  # right with prob = confidence
    probs = np.stack([confidence, 1 - confidence], axis=1)
    labels = np.where(correct, 0, 1)
    assert classification_metrics(probs, labels)["ece"] < 0.01


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"probs must be \[N, K\]"):
        classification_metrics(np.ones(3) / 3, np.array([0]))
    with pytest.raises(ValueError, match="probability vector"):
        classification_metrics(np.array([[0.5, 0.6]]), np.array([0]))
    with pytest.raises(ValueError, match=r"integers in \[0, 2\)"):
        classification_metrics(np.array([[0.5, 0.5]]), np.array([2]))


def test_reliability_diagram_writes_a_png(tmp_path):
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    path = tmp_path / "reliability.png"
    metrics = reliability_diagram(probs, np.array([0, 1, 1]), path, title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert [p.name for p in tmp_path.iterdir()] == ["reliability.png"]  # no temp files left
