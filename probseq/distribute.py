"""Training on several devices or machines with TensorFlow's own `tf.distribute`.

Three strategies, by name (`probseq train --strategy NAME`):

- `"default"`: one process, TensorFlow's default strategy (no replication);
- `"mirrored"`: `tf.distribute.MirroredStrategy` over this process's devices (GPUs, or
  several logical CPUs if the program configured them);
- `"multi-worker"`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per worker,
  the cluster read from the `TF_CONFIG` environment variable in TensorFlow's format::

      {"cluster": {"worker": ["host0:12345", "host1:12345"]},
       "task": {"type": "worker", "index": 0}}

  Worker 0 is the chief (TensorFlow's convention when the cluster has no "chief" job).
  The strategy must exist before TensorFlow runs any op in the process ("collective ops
  must be configured at program startup"), which `make_strategy` checks.

The fitting loop (`probseq.inference._loop.fit_loop`) is data-parallel: each replica
takes its slice of every global batch (`distribute_dataset` shards the batches by data,
so the global batch of step `t` is the single-process pipeline's batch `t`), gradients
are all-reduced with a sum of per-replica means divided by the number of replicas, and
every replica applies the same update. Only the chief writes files that matter
(`is_chief`, `worker_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "STRATEGIES",
    "ClusterConfigError",
    "WorkerLostError",
    "agree_max",
    "agree_to_stop",
    "cluster_from_env",
    "is_chief",
    "make_strategy",
    "remove_worker_dir",
    "tf_config",
    "worker_dir",
]

STRATEGIES = ("default", "mirrored", "multi-worker")


class ClusterConfigError(ValueError):
    """`TF_CONFIG` is missing or does not describe this worker."""


class WorkerLostError(RuntimeError):
    """A multi-worker run lost a peer; the message names the checkpoint to resume from."""


def cluster_from_env(environ=None) -> dict:
    """`TF_CONFIG` parsed and checked: `{"cluster": {...}, "task": {"type", "index"}}`."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        raise ClusterConfigError(
            "--strategy multi-worker reads the cluster from the TF_CONFIG environment "
            'variable, which is not set; e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:2222", '
            '"host1:2222"]}, "task": {"type": "worker", "index": 0}}\' on the first host.'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON: {error}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterConfigError('TF_CONFIG has no "cluster" mapping of job names to hosts.')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterConfigError('TF_CONFIG has no "task" with "type" and "index".')
    job, index = task["type"], task["index"]
    hosts = cluster.get(job)
    if not isinstance(hosts, list) or not hosts:
        raise ClusterConfigError(
            f"TF_CONFIG's task type {job!r} is not a job of the cluster {sorted(cluster)}."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(hosts):
        raise ClusterConfigError(
            f"TF_CONFIG's task index {index!r} is not in [0, {len(hosts)}) for job {job!r}."
        )
    for name, addresses in cluster.items():
        for address in addresses if isinstance(addresses, list) else [addresses]:
            if not isinstance(address, str) or ":" not in address:
                raise ClusterConfigError(
                    f"TF_CONFIG's cluster job {name!r} has {address!r}; hosts are 'host:port'."
                )
    return config


def tf_config(workers: list[str], index: int) -> str:
    """The `TF_CONFIG` of worker `index` of a cluster of `workers` ("host:port" each)."""
    return json.dumps(
        {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}
    )


def _tensorflow_started() -> bool:
    """True once the eager context has been initialized (an op ran, a device was listed)."""
    from tensorflow.python.eager import context

    return context.context()._initialized  # private: TF 2.18 has no public accessor


def make_strategy(name: str, *, timeout_seconds: float | None = 60.0):
    """The `tf.distribute.Strategy` called `name` (one of `STRATEGIES`).

    Args:
      name: `"default"`, `"mirrored"` or `"multi-worker"`.
      timeout_seconds: multi-worker: how long a collective (the gradient all-reduce) may
        wait for a peer before it fails (None: forever). With TensorFlow's peer health
        checks this bounds how long the survivors of a dead worker wait.

    Raises:
      ClusterConfigError: multi-worker without a valid `TF_CONFIG`.
      RuntimeError: multi-worker after TensorFlow has started running ops.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster_from_env()
    if _tensorflow_started():
        raise RuntimeError(
            "the multi-worker strategy must be created before TensorFlow runs any op "
            "(TensorFlow: collective ops must be configured at program startup)."
        )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _task(strategy) -> tuple[str | None, int | None]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy) -> bool:
    """True for the process that writes checkpoints, logs and metrics: the only process
    of a single-machine strategy, the `"chief"` task, or worker 0 without one."""
    task_type, task_id = _task(strategy)
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_dir(path: str | os.PathLike, strategy) -> Path:
    """Where this process writes what every worker must write (checkpoints: saving is a
    collective): `path` on the chief, a fresh temporary directory elsewhere (remove it
    with `shutil.rmtree` when done, as TensorFlow's multi-worker guide does)."""
    if is_chief(strategy):
        return Path(path)
    task_type, task_id = _task(strategy)
    return Path(tempfile.mkdtemp(prefix=f"probseq-{task_type}{task_id}-"))


def remove_worker_dir(path: Path, strategy) -> None:
    """Delete a non-chief's temporary directory (never the chief's)."""
    if not is_chief(strategy):
        shutil.rmtree(path, ignore_errors=True)


def agree_max(strategy, value: float) -> float:
    """The maximum of `value` over the workers (an all-gather: `tf.distribute` reduces
    only by sum or mean; `value` itself without replicas across processes)."""
    if strategy is None or not strategy.extended._in_multi_worker_mode():  # as Keras
        return value
    import tensorflow as tf

    local = strategy.run(lambda: tf.constant([float(value)], tf.float32))
    return float(tf.reduce_max(strategy.gather(local, axis=0)).numpy())


def agree_to_stop(strategy, stop: bool) -> bool:
    """True on every worker if any worker wants to stop (the maximum of the flags), so a
    time budget measured on each worker's own clock ends the run at the same step
    everywhere; without replicas across processes, `stop` itself."""
    return agree_max(strategy, 1.0 if stop else 0.0) > 0
