"""`experiments/echo_seq2seq.py`: seeded data, and a tiny end-to-end run with `--json`."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "echo_seq2seq.py"


@pytest.fixture(scope="module")
def echo():
    spec = importlib.util.spec_from_file_location("echo_seq2seq", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["echo_seq2seq"] = module
    spec.loader.exec_module(module)
    return module


def test_echo_data_is_seeded_and_split(echo):
    data = echo.make_echo_data(1000, 5, 2, 100, 0.2, seed=3)
    again = echo.make_echo_data(1000, 5, 2, 100, 0.2, seed=3)
    other = echo.make_echo_data(1000, 5, 2, 100, 0.2, seed=4)
    for key, value in data.items():
        np.testing.assert_array_equal(value, again[key])
        assert value.dtype == np.int32
    assert not np.array_equal(data["train_source"], other["train_source"])
    assert data["train_source"].shape == (800, 5) and data["test_source"].shape == (200, 5)
    np.testing.assert_array_equal(data["train_target"], data["train_source"][:, :2])
    np.testing.assert_array_equal(data["test_target"], data["test_source"][:, :2])
    assert data["train_source"].min() >= 0 and data["train_source"].max() < 100
    with pytest.raises(ValueError, match="echo_length"):
        echo.make_echo_data(10, 3, 4, 10, 0.2, seed=0)


def test_config_from_args_layers_tiny_and_flags(echo):
    config = echo.config_from_args(echo.parse_args(["--tiny", "--hidden-size", "8"]))
    assert config.hidden_size == 8 and config.num_steps == echo.TINY["num_steps"]
    longer = echo.config_from_args(echo.parse_args(["--source-length", "10", "--echo-length", "5"]))
    assert (longer.source_length, longer.echo_length) == (10, 5)
    assert echo.config_from_args(echo.parse_args([])) == echo.EchoConfig()


@pytest.mark.slow
def test_tiny_run_prints_one_json_object(echo, capsys, tmp_path):
    results_path = tmp_path / "results.json"
    argv = ["--tiny", "--json", "--cell", "gru", "--results", str(results_path)]
    results = echo.main(argv + ["--progress-every", "2"])
    out = capsys.readouterr().out
    printed = json.loads(out)  # the whole of stdout is one JSON object
    assert out.strip().count("\n") == 0
    for key in ["token_accuracy", "sequence_accuracy", "test_nll_nats_per_sequence"]:
        assert key in printed and np.isfinite(printed[key])
    assert 0.0 <= printed["token_accuracy"] <= 1.0
    assert 0.0 <= printed["sequence_accuracy"] <= printed["token_accuracy"] + 1e-12
    assert printed["test_nll_nats_per_sequence"] > 0.0
    assert printed["steps_run"] == echo.TINY["num_steps"]
    assert printed["config"]["cell"] == "gru"
    assert json.loads(results_path.read_text()) == printed == json.loads(json.dumps(results))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["map", "variational"])
def test_both_methods_learn_a_small_echo_task_without_a_template(echo, method):
    """fit_map and fit_variational take the network and a log_likelihood_fn (no template
    distribution); both learn to echo the first token of 3 (chance: 10%)."""
    config = echo.EchoConfig(
        source_length=3, echo_length=1, vocab_size=10, num_examples=2000, hidden_size=32,
        batch_size=64, num_steps=300, method=method, eval_batch_size=400, eval_draws=4,
    )  # fmt: skip
    results = echo.run(config, progress_every=None)
    assert results["method"] == method
    assert results["token_accuracy"] >= 0.9, results
    assert 0.0 < results["test_nll_nats_per_sequence"] < 0.5
