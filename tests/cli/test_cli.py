"""The `probseq` command line: config, train/resume, evaluate, sample and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from probseq.cli.config import ConfigError, TrainConfig, load_config_file, resolve_config
from probseq.cli.main import main

TINY_FLAGS = [
    "--hidden-size", "8", "--num-layers", "1", "--num-steps", "8", "--batch-size", "4",
    "--warmup-steps", "1", "--eval-every", "2", "--checkpoint-every", "2",
    "--eval-chars", "400", "--sample-length", "10", "--budget-minutes", "none",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    words = ["the ", "king ", "and ", "queen ", "of ", "rome ", "speak ", "thou "]
    text = "".join(rng.choice(words, size=4000)) + "\n"
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _train(run_dir: Path, corpus: Path, *extra: str) -> int:
    return main(["train", "--corpus", str(corpus), "--run-dir", str(run_dir), "--no-progress"]
                + TINY_FLAGS + list(extra))  # fmt: skip


# ---------------------------------------------------------------------------- config
def test_config_defaults_file_and_flag_precedence(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"hidden_size": 64, "learning_rate": 0.01}))
    config = resolve_config(load_config_file(path), {"learning_rate": "0.02", "clip_norm": "none"})
    assert config.hidden_size == 64  # from the file
    assert config.learning_rate == 0.02  # flag beats file
    assert config.clip_norm is None
    assert config.num_layers == TrainConfig().num_layers  # default kept


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"hidden_sise": 3}', "unknown settings"),
        ("{not json", "not valid JSON"),
        ('{"hidden_size": "big"}', "hidden_size must be of type int"),
        ('{"hidden_size": 0}', "hidden_size must be >= 1"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_config_file_errors(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        resolve_config(load_config_file(path))


def test_unknown_flag_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--run-dir", "x", "--hidden-sise", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --hidden-sise" in capsys.readouterr().err


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "--run-dir", str(tmp_path / "r"), "--config", str(tmp_path / "no.json")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------- train and resume
def test_train_writes_a_complete_run_dir(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    assert _train(run, corpus_file, "--max-steps", "4") == 0
    for name in ("config.json", "vocabulary.json", "metrics.json", "learning_curve.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["hidden_size"] == 8 and config["max_steps"] == 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 4
    assert 0 < metrics["valid_bits_per_char"] < 10
    assert [e["step"] for e in metrics["evaluations"]] == [2, 4]
    assert "validation" in capsys.readouterr().out


def _weights(run: Path) -> list[np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("network/"))
    return [reader.get_tensor(n) for n in names if "OPTIMIZER_SLOT" not in n]


def test_resume_continues_with_the_same_data_order(tmp_path, corpus_file, capsys):
    # A constant learning rate, so extending max_steps does not change the schedule.
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _train(straight, corpus_file, "--max-steps", "6", "--lr-schedule", "constant") == 0
    assert _train(resumed, corpus_file, "--max-steps", "4", "--lr-schedule", "constant") == 0
    capsys.readouterr()
    assert _train(resumed, corpus_file, "--max-steps", "6") == 0
    assert "Resuming run" in capsys.readouterr().err
    assert json.loads((resumed / "metrics.json").read_text())["step"] == 6
    for a, b in zip(_weights(straight), _weights(resumed), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_different_architecture(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    assert _train(run, corpus_file, "--max-steps", "2") == 0
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert _train(run, corpus_file, "--max-steps", "4", "--hidden-size", "16") == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "hidden_size" in err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_corrupt_checkpoint_is_refused_and_kept(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    assert _train(run, corpus_file, "--max-steps", "2") == 0
    data = next((run / "checkpoints").glob("*.data-*"))
    data.write_bytes(b"garbage" * 10)
    assert _train(run, corpus_file, "--max-steps", "4") == 2
    assert "cannot be restored" in capsys.readouterr().err
    assert data.read_bytes() == b"garbage" * 10
    assert main(["evaluate", str(run)]) == 2
    assert "cannot be restored" in capsys.readouterr().err


def test_corrupt_config_and_vocabulary_are_refused(tmp_path, corpus_file, capsys):
    run = tmp_path / "run"
    assert _train(run, corpus_file, "--max-steps", "2") == 0
    (run / "vocabulary.json").write_text("{oops")
    assert main(["sample", str(run)]) == 2
    assert "vocabulary" in capsys.readouterr().err
    (run / "config.json").write_text('{"hidden_size": -1}')
    assert _train(run, corpus_file, "--max-steps", "4") == 2
    assert "corrupt or invalid" in capsys.readouterr().err
    assert (run / "config.json").read_text() == '{"hidden_size": -1}'


def test_foreign_and_missing_run_dirs(tmp_path, corpus_file, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert _train(foreign, corpus_file, "--max-steps", "2") == 2
    assert "holds no probseq run" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sample", str(foreign)]) == 2
    assert "not a probseq run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_killed_run_loses_at_most_one_checkpoint_interval(tmp_path, corpus_file):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "probseq.cli.main", "train", "--corpus", str(corpus_file),
           "--run-dir", str(run), "--no-progress", *TINY_FLAGS, "--max-steps", "100000",
           "--eval-every", "100000"]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoints = run / "checkpoints"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(list(checkpoints.glob("ckpt-*.index"))) >= 2 or process.poll() is not None:
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    import tensorflow as tf

    saved = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
    assert saved >= 2
    code = _train(run, corpus_file, "--max-steps", str(saved + 2))
    assert code == 0
    assert json.loads((run / "metrics.json").read_text())["step"] == saved + 2


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, corpus_file):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "probseq.cli.main", "train", "--corpus", str(corpus_file),
           "--run-dir", str(run), "--no-progress", *TINY_FLAGS, "--max-steps", "100000",
           "--checkpoint-every", "100000", "--eval-every", "100000"]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    tensorboard = run / "tensorboard"
    # The event file appears once training has started.
    while time.monotonic() < deadline and not (tensorboard.exists() and any(tensorboard.iterdir())):
        time.sleep(0.2)
    time.sleep(2.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    assert "checkpoint saved at step" in err.decode()
    assert list((run / "checkpoints").glob("ckpt-*.index"))


# ------------------------------------------------------------------ evaluate / sample
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, corpus_file) -> Path:
    run = tmp_path_factory.mktemp("runs") / "run"
    assert _train(run, corpus_file, "--max-steps", "4") == 0
    return run


@pytest.mark.parametrize("mode", ["windows", "stream"])
def test_evaluate_json(trained_run, capsys, mode):
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--split", "valid", "--mode", mode, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("bits_per_char", "nll_nats_per_char", "nll_nats_per_window", "num_chars"):
        assert key in result
    assert result["bits_per_char"] == pytest.approx(result["nll_nats_per_char"] / np.log(2))
    assert result["mode"] == mode


def test_evaluate_text_with_unknown_characters(trained_run, tmp_path, capsys):
    text = tmp_path / "held_out.txt"
    text.write_text("the king and queen of rome speak ZZ thou Q\n" * 5)
    capsys.readouterr()
    assert main(["evaluate", str(trained_run), "--text", str(text)]) == 2
    err = capsys.readouterr().err
    assert "'Z'" in err and "'Q'" in err
    assert main(["evaluate", str(trained_run), "--text", str(text), "--on-unknown", "skip",
                 "--json", "--num-steps", "8"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["num_unknown_skipped"] == 15
    assert main(["evaluate", str(trained_run), "--text", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_evaluate_too_short_text(trained_run, tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("the")
    assert main(["evaluate", str(trained_run), "--text", str(text)]) == 2
    assert "num_steps" in capsys.readouterr().err


def test_sample_is_primed_and_seeded(trained_run, capsys):
    capsys.readouterr()
    args = ["sample", str(trained_run), "--prime", "the k", "--length", "30", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("the k") and len(first.rstrip("\n")) >= 35
    assert main([*args[:-1], "4"]) == 0
    assert capsys.readouterr().out != first
    assert main(["sample", str(trained_run), "--prime", "XYZ"]) == 2
    assert "'X'" in capsys.readouterr().err
