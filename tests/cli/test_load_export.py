"""`probseq.load(run_dir)` and `probseq export`: the same numbers and texts as the CLI.

The exported SavedModel is tested in a subprocess in which `import probseq` fails, as it
would on a serving machine without probseq.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import probseq
from probseq.cli.main import main

from .test_cli import _train, corpus_file  # noqa: F401 - fixture

tfd = tfp.distributions


@pytest.fixture(scope="module")
def runs(tmp_path_factory, corpus_file) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("runs")
    out = {"map": root / "map", "variational": root / "vi"}
    assert _train(out["map"], corpus_file, "--max-steps", "6", "--cell", "gru") == 0
    vi_flags = ["--max-steps", "6", "--method", "variational", "--eval-draws", "4"]
    assert _train(out["variational"], corpus_file, *vi_flags) == 0
    return out


def _cli(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("method", ["map", "variational"])
def test_load_gives_what_the_cli_gives(runs, tmp_path, capsys, method):
    run = runs[method]
    model = probseq.load(run)
    assert model.method == method and model.config.max_steps == 6
    assert len(model.vocabulary) == model.network.vocab_size
    assert (model.surrogate is None) == (method == "map")
    text = model.sample_text(40, prime="the k", temperature=0.8, seed=3)
    cli = _cli(capsys, "sample", str(run), "--prime", "the k", "--length", "40",
               "--temperature", "0.8", "--seed", "3")  # fmt: skip
    assert text == cli.rstrip("\n") and text.startswith("the k")
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("the queen of rome and the king speak\n" * 4)
    for mode in ("windows", "stream"):
        mine = model.evaluate_text(held_out.read_text(), mode=mode)
        cli = json.loads(_cli(capsys, "evaluate", str(run), "--text", str(held_out),
                              "--mode", mode, "--json"))  # fmt: skip
        for key in ("bits_per_char", "nll_nats_per_char", "nll_nats_per_window", "num_chars"):
            assert mine[key] == pytest.approx(cli[key], rel=1e-6), key


def test_map_distribution_is_the_network_distribution(runs):
    model = probseq.load(runs["map"])
    dist = model.distribution(12, prime="the ", temperature=0.7)
    assert isinstance(dist, probseq.LSTMAutoregressive)
    assert dist.event_shape == [12] and dist.batch_shape == []
    x = dist.sample(3, seed=(1, 2))
    reference = probseq.LSTMAutoregressive(
        model.network, 12, prefix=model.encode("the "), temperature=0.7
    )
    np.testing.assert_allclose(dist.log_prob(x), reference.log_prob(x), rtol=1e-6)
    with pytest.raises(ValueError, match="MAP run"):
        model.distribution(12, num_draws=3)


def test_variational_distribution_is_the_posterior_predictive_mixture(runs):
    model = probseq.load(runs["variational"])
    dist = model.distribution(10, prime="the ", num_draws=5, seed=2)
    assert type(dist).__name__.endswith("MixtureSameFamily")  # TFP picks a subclass
    assert isinstance(dist.components_distribution, probseq.LSTMAutoregressive)
    assert dist.event_shape == [10] and dist.batch_shape == []
    x = dist.sample(4, seed=(3, 4))  # :: [4, 10]
    components = probseq.LSTMAutoregressive(
        model.network, 10, prefix=model.encode("the "), params=model.posterior_draws(5, 2)
    )
    per_draw = components.log_prob(x[:, None, :])  # :: [4, 5]
    np.testing.assert_allclose(
        dist.log_prob(x), tf.reduce_logsumexp(per_draw, axis=1) - np.log(5.0), rtol=1e-5
    )
    # Its draws are those of evaluate_text(num_draws=S, seed=seed).
    ids = model.encode("the queen of rome and the king speak\n" * 3)
    stream = model.evaluate_text(model.vocabulary.decode(ids), mode="stream", num_draws=5, seed=2)
    whole = probseq.LSTMAutoregressive(
        model.network, len(ids), params=model.posterior_draws(5, 2)
    ).log_prob(ids)
    predictive = float(tf.reduce_logsumexp(whole) - np.log(5.0))
    assert -stream["nll_nats_per_char"] * len(ids) == pytest.approx(predictive, rel=1e-5)


def test_load_errors_are_clear(tmp_path):
    from probseq.cli.rundir import RunDirError

    with pytest.raises(RunDirError, match="does not exist"):
        probseq.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirError, match="not a probseq run directory"):
        probseq.load(tmp_path / "empty")


_SERVE = """
import json, sys
sys.modules["probseq"] = None  # any `import probseq` now fails
import tensorflow as tf
try:
    import probseq  # noqa
    raise SystemExit("probseq was importable")
except ImportError:
    pass
m = tf.saved_model.load(sys.argv[1])
texts = m.sample(prime=tf.constant(["the k", "", "queen"]), length=tf.constant(30),
                 temperature=tf.constant(0.8), seed=tf.constant([3, 0]))
log_prob = m.log_prob(text=tf.constant([open(sys.argv[2]).read(), "the king"]))
try:
    m.log_prob(text=tf.constant(["the KING"]))
    error = None
except tf.errors.InvalidArgumentError as e:
    error = e.message
print(json.dumps({"texts": [t.decode() for t in texts.numpy()],
                  "log_prob": log_prob.numpy().tolist(), "error": error,
                  "info": json.loads(m.info().numpy().decode()),
                  "signatures": sorted(m.signatures)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["map", "variational"])
def test_exported_saved_model_serves_without_probseq(runs, tmp_path, capsys, method):
    run, out = runs[method], tmp_path / "exported"
    report = _cli(capsys, "export", str(run), str(out))
    assert f"SavedModel written to {out}" in report
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("the queen of rome and the king speak\n" * 4)
    script = tmp_path / "serve.py"
    script.write_text(textwrap.dedent(_SERVE))
    proc = subprocess.run(
        [sys.executable, str(script), str(out), str(held_out)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    for prime, text in zip(["the k", "", "queen"], served["texts"], strict=True):
        cli = _cli(capsys, "sample", str(run), "--prime", prime, "--length", "30",
                   "--temperature", "0.8", "--seed", "3")  # fmt: skip
        assert text == cli.rstrip("\n")
    cli = json.loads(_cli(capsys, "evaluate", str(run), "--text", str(held_out),
                          "--mode", "stream", "--json"))  # fmt: skip
    assert served["log_prob"][0] == pytest.approx(
        -cli["nll_nats_per_char"] * cli["num_chars"], rel=1e-4
    )
    assert "outside the vocabulary of the model" in served["error"] and "KING" in served["error"]
    assert {"sample", "log_prob"} <= set(served["signatures"])
    assert served["info"]["method"] == method
    if method == "variational":
        assert served["info"]["num_draws"] == 4 and "posterior predictive" in report
    capsys.readouterr()
    assert main(["export", str(run), str(out)]) == 2  # never overwrites
    assert "not an empty directory" in capsys.readouterr().err
