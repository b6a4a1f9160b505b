"""`probseq train --strategy multi-worker` with real worker processes on loopback ports.

Every wait has a timeout, so a hang fails the test instead of stalling CI. Two workers
share this machine's two cores: these tests check equality and failure handling, not
speed.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import free_ports, start, wait_all, worker_env

PROBSEQ = ["-c", "from probseq.cli.main import console; console()"]
FLAGS = [
    "--hidden-size",
    "8",
    "--num-layers",
    "1",
    "--num-steps",
    "8",
    "--batch-size",
    "8",
    "--learning-rate",
    "0.01",
    "--eval-chars",
    "200",
    "--eval-every",
    "1000",
    "--sample-length",
    "5",
    "--budget-minutes",
    "none",
    "--no-progress",
]
TIMEOUT = 240  # seconds for any one run of the workers
# Equality of a two-worker run with one process on the same global batches. The sum of
# two half-batch means differs from the full-batch mean by float32 rounding only
# (~1e-7 relative per step); after 20 Adam steps that stays far below this.
RTOL = 1e-5


def _corpus(tmp_path) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("To be, or not to be: that is the question. Whether tis nobler. " * 300)
    return corpus


def _single(tmp_path, run_dir, extra) -> None:
    """The single-process reference, in this process (no TensorFlow start-up to pay)."""
    from probseq.cli.main import main

    args = ["train", "--corpus", str(_corpus(tmp_path)), "--run-dir", str(run_dir), *FLAGS, *extra]
    assert main(args) == 0


def _workers(tmp_path, run_dir, extra, name="run", flags=FLAGS):
    ports = free_ports(2)
    corpus = _corpus(tmp_path)
    processes, logs = [], []
    for index in range(2):
        log = tmp_path / f"{name}-worker{index}.log"
        logs.append(log)
        env = worker_env(ports, index)
        env["TMPDIR"] = str(tmp_path / f"{name}-tmp{index}")  # where a non-chief saves
        Path(env["TMPDIR"]).mkdir()
        processes.append(
            start(
                [
                    *PROBSEQ,
                    "train",
                    "--strategy",
                    "multi-worker",
                    "--corpus",
                    str(corpus),
                    "--run-dir",
                    str(run_dir),
                    *flags,
                    *extra,
                ],
                env,
                log,
            )
        )
    return processes, logs


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert latest is not None, f"no checkpoint in {run_dir}"
    reader = tf.train.load_checkpoint(latest)
    names = [
        n for n in reader.get_variable_to_shape_map() if n.startswith(("network/", "surrogate/"))
    ]
    assert names
    return {n: reader.get_tensor(n) for n in names if "OPTIMIZER_SLOT" not in n}


def _losses(run_dir: Path) -> np.ndarray:
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    return np.array([h["loss_nats_per_char"] for h in history])


def _logs(logs) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["map", "variational"])
def test_two_workers_train_like_one_process_and_resume_after_a_dead_worker(tmp_path, method):
    """1. Same global batches, same update: a two-worker run's loss trajectory and final
    weights (VI: the posterior's locs and scales; one weight draw per step shared by the
    replicas through the step seed, the KL counted once) equal a single-process run's.
    2. (MAP) Kill worker 1 of a second run after its first checkpoint: worker 0 exits
    with the clear error within 60 s; restarting both resumes from the checkpoint and
    ends with the weights of the uninterrupted two-worker run."""
    extra = ["--method", method, "--max-steps", "120", "--checkpoint-every", "20"]
    _single(tmp_path, tmp_path / "single", extra)
    processes, logs = _workers(tmp_path, tmp_path / "multi", extra)
    assert wait_all(processes, TIMEOUT) == [0, 0], _logs(logs)
    np.testing.assert_allclose(_losses(tmp_path / "multi"), _losses(tmp_path / "single"), rtol=RTOL)
    want, got = _weights(tmp_path / "single"), _weights(tmp_path / "multi")
    assert got.keys() == want.keys()
    worst = max(float(np.max(np.abs(got[n] - want[n]))) for n in want)
    scale = max(float(np.max(np.abs(want[n]))) for n in want)
    print(
        f"{method}: largest weight difference two workers vs one process {worst:.1e} "
        f"(largest weight {scale:.2f})"
    )
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=1e-6, err_msg=name)
    metrics = json.loads((tmp_path / "multi" / "metrics.json").read_text())
    assert metrics["strategy"]["workers"] == 2 and metrics["strategy"]["replicas"] == 2
    assert metrics["step"] == 120
    # The other worker saved its checkpoints (a collective) to a temporary dir, now gone.
    assert [p.name for p in (tmp_path / "run-tmp1").iterdir() if "probseq" in p.name] == []
    if method == "variational":
        return  # losing a worker and resuming do not depend on the method: tested with MAP

    run_dir = tmp_path / "killed"
    processes, logs = _workers(tmp_path, run_dir, extra, name="killed")
    deadline = time.monotonic() + TIMEOUT
    while tf.train.latest_checkpoint(str(run_dir / "checkpoints")) is None:
        assert time.monotonic() < deadline and processes[0].poll() is None, _logs(logs)
        time.sleep(0.02)
    processes[1].kill()
    killed_at = time.monotonic()
    try:
        code = processes[0].wait(timeout=90)
    except subprocess.TimeoutExpired:
        processes[0].kill()
        raise AssertionError("the surviving worker hung after its peer died") from None
    waited = time.monotonic() - killed_at
    text = logs[0].read_text()
    assert code != 0, f"the run ended before worker 1 was killed\n{text[-2000:]}"
    assert code == 3, text[-3000:]
    assert "lost contact with another worker" in text and "restart every worker" in text
    assert waited < 60, f"the survivor took {waited:.0f} s to stop"
    print(f"{method}: the surviving worker stopped {waited:.1f} s after its peer was killed")

    restarted, logs = _workers(tmp_path, run_dir, extra, name="restarted")
    assert wait_all(restarted, TIMEOUT) == [0, 0], _logs(logs)
    assert "Resuming run" in logs[0].read_text()
    resumed = _weights(run_dir)
    for name in got:
        np.testing.assert_allclose(resumed[name], got[name], rtol=RTOL, atol=1e-6, err_msg=name)


def test_multi_worker_without_tf_config_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from probseq.cli.main import main

    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = [
        "train",
        "--strategy",
        "multi-worker",
        "--corpus",
        str(_corpus(tmp_path)),
        "--run-dir",
        str(tmp_path / "r"),
        *FLAGS,
        "--max-steps",
        "1",
    ]
    assert main(args) == 2
    assert "reads the cluster from the TF_CONFIG environment variable" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cluster_config_errors():
    from probseq.distribute import ClusterConfigError, cluster_from_env, tf_config

    good = {"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 1}}
    assert cluster_from_env({"TF_CONFIG": json.dumps(good)})["task"]["index"] == 1
    assert json.loads(tf_config(["h:1", "h:2"], 1)) == good
    cases = {
        "not json": "not valid JSON",
        json.dumps({"task": good["task"]}): 'no "cluster"',
        json.dumps({"cluster": good["cluster"]}): 'no "task"',
        json.dumps({**good, "task": {"type": "ps", "index": 0}}): "not a job of the cluster",
        json.dumps({**good, "task": {"type": "worker", "index": 2}}): "not in [0, 2)",
        json.dumps(
            {"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}
        ): "host:port",
    }
    for text, message in cases.items():
        with pytest.raises(
            ClusterConfigError,
            match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
        ):
            cluster_from_env({"TF_CONFIG": text})


def test_the_time_budget_uses_the_agreed_fraction():
    """Each worker's own clock gives its fraction of the budget; with `agree` (the
    workers' maximum, an all-gather in a multi-worker run: exercised by every step of
    the runs above through `AgreedCallbacks`) every worker uses the same value, so the
    learning rates and the last step agree."""
    from probseq.cli.reporting import TimeBudgetCallback
    from probseq.inference import StepInfo

    progress = tf.Variable(0.0)
    seen = []
    budget = TimeBudgetCallback(60.0, progress=progress, agree=lambda f: seen.append(f) or 1.0)
    info = StepInfo(step=1, loss=1.0, nll=1.0, grad_norm=1.0, learning_rate=1e-3, seconds=0.1)
    assert budget.on_step(info) is True  # another worker's clock says the budget is spent
    assert seen and seen[0] < 0.01 and float(progress.numpy()) == 1.0


def test_agreed_callbacks_stop_together_and_reraise_a_local_ctrl_c():
    from probseq.cli.train import AgreedCallbacks
    from probseq.inference import Callback, StepInfo

    class Stop(Callback):
        def on_step(self, info):
            return info.step >= 2

    class CtrlC(Callback):
        def on_step(self, info):
            raise KeyboardInterrupt

    strategy = tf.distribute.get_strategy()  # one process: the agreement is the local stop
    info = [
        StepInfo(step=s, loss=1.0, nll=1.0, grad_norm=1.0, learning_rate=1e-3, seconds=0.1)
        for s in (1, 2)
    ]
    agreed = AgreedCallbacks([Stop()], strategy)
    assert agreed.on_step(info[0]) is False and agreed.on_step(info[1]) is True
    with pytest.raises(KeyboardInterrupt):
        AgreedCallbacks([Stop(), CtrlC()], strategy).on_step(info[0])


def test_mirrored_strategy_from_the_command_line(tmp_path):
    """`--strategy mirrored`: this machine's devices in one process (one CPU here)."""
    from probseq.cli.main import main

    args = [
        "train",
        "--strategy",
        "mirrored",
        "--corpus",
        str(_corpus(tmp_path)),
        "--run-dir",
        str(tmp_path / "m"),
        *FLAGS,
        "--max-steps",
        "2",
    ]
    assert main(args) == 0
    strategy = json.loads((tmp_path / "m" / "metrics.json").read_text())["strategy"]
    assert strategy == {"name": "MirroredStrategy", "replicas": 1, "workers": 1}
