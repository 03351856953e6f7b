"""Distribution strategies and mixed precision for the training CLIs.

`get_strategy(name)` turns the `--distribution_strategy` flag into a
`tf.distribute.Strategy`:

| name                    | what it is                                        |
|-------------------------|---------------------------------------------------|
| `one_device`            | the first GPU, else the CPU                       |
| `mirrored`              | every local GPU (or the CPU), one replica each    |
| `multi_worker_mirrored` | `MultiWorkerMirroredStrategy`, cluster from       |
|                         | `TF_CONFIG`                                       |
| `tpu`                   | `TPUStrategy` on `TPUClusterResolver(tpu)`        |

Create the strategy first thing in a program: `MultiWorkerMirroredStrategy`
configures the collective-ops server of the TF context, which fails once
any op has run.

`set_mixed_precision(policy)` sets the tf_keras global policy
(`float32`, `mixed_bfloat16`, `mixed_float16`) before the model is built;
`wrap_optimizer` adds the dynamic loss scaling `mixed_float16` needs. Logits
and losses stay float32 (the pretrainer's heads and the losses cast).

Example:

>>> strategy = distribution.get_strategy("mirrored")
>>> distribution.set_mixed_precision("mixed_bfloat16")
>>> with strategy.scope():
...   model = build_pretrainer(config, with_nsp=True)
...   optimizer = distribution.wrap_optimizer(create_optimizer(...),
...                                           "mixed_bfloat16")
"""

import json
import os
from typing import Optional

import tensorflow as tf
import tf_keras

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class DistributionError(ValueError):
  """A strategy that cannot be made here: the message names the fix."""


def _tf_config() -> dict:
  """The parsed `TF_CONFIG`, checked for what MWMS needs.

  Raises:
    DistributionError: unset, not JSON, or without `cluster`/`task`.
  """
  text = os.environ.get("TF_CONFIG")
  example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", '
             '"host2:port"]}, "task": {"type": "worker", "index": 0}}\'')
  if not text:
    raise DistributionError(
        "--distribution_strategy=multi_worker_mirrored needs the TF_CONFIG "
        f"environment variable (the cluster and this task), e.g. {example}. "
        "Received: TF_CONFIG unset")
  try:
    config = json.loads(text)
  except ValueError as e:
    raise DistributionError(
        f"TF_CONFIG is not valid JSON ({e}); expected e.g. {example}. "
        f"Received: {text[:200]!r}") from None
  if not isinstance(config, dict):
    raise DistributionError(f"TF_CONFIG must be a JSON object, e.g. "
                            f"{example}. Received: {text[:200]!r}")
  cluster, task = config.get("cluster"), config.get("task")
  if not isinstance(cluster, dict) or not cluster or not isinstance(
      task, dict) or "type" not in task or "index" not in task:
    raise DistributionError(
        "TF_CONFIG needs a non-empty `cluster` and a `task` with `type` and "
        f"`index`, e.g. {example}. Received: {text[:200]!r}")
  jobs = cluster.get(task["type"])
  if not isinstance(jobs, list) or not (
      isinstance(task["index"], int) and 0 <= task["index"] < len(jobs)):
    raise DistributionError(
        f"TF_CONFIG's task {task['type']!r} index {task['index']!r} is not "
        f"in its cluster {json.dumps(cluster)}. Received: {text[:200]!r}")
  return config


def get_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
  """The strategy for `--distribution_strategy`.

  Args:
    name: str. One of `STRATEGIES`.
    tpu: str. For "tpu": the TPU's name or grpc address; "" for a local TPU
      (a TPU VM). Defaults to "".

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    DistributionError: an unknown name, a missing or malformed `TF_CONFIG`
      for "multi_worker_mirrored", no TPU for "tpu".
  """
  if name == "one_device":
    device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker_mirrored":
    _tf_config()
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver)
  if name == "tpu":
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError, RuntimeError) as e:
      message = " ".join(str(e).split())[:200] or type(e).__name__
      raise DistributionError(
          f"--distribution_strategy=tpu: no TPU found (tpu={tpu!r}: "
          f"{message}). Run on a TPU VM, pass --tpu=NAME_OR_ADDRESS, or "
          "choose another --distribution_strategy.") from None
    return tf.distribute.TPUStrategy(resolver)
  raise DistributionError(f"--distribution_strategy must be one of "
                          f"{', '.join(STRATEGIES)}. Received: {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this worker writes the real checkpoints and summaries.

  The chief is the `chief` task if the cluster has one, else worker 0 (the
  tf.distribute convention); single-worker strategies are always chief.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  jobs = resolver.cluster_spec().as_dict()
  return (resolver.task_type == "worker" and resolver.task_id == 0 and
          "chief" not in jobs)


def task_id(strategy: tf.distribute.Strategy) -> int:
  """This worker's index (0 for single-worker strategies)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  return int(resolver.task_id or 0) if resolver is not None else 0


def set_mixed_precision(policy: str) -> None:
  """Sets the tf_keras global dtype policy; call before building the model.

  Args:
    policy: str. One of `PRECISIONS`. "mixed_bfloat16" suits TPUs and
      recent CPUs/GPUs; "mixed_float16" GPUs (with loss scaling, see
      `wrap_optimizer`).

  Raises:
    ValueError: an unknown policy.
  """
  if policy not in PRECISIONS:
    raise ValueError(f"--mixed_precision must be one of "
                     f"{', '.join(PRECISIONS)}. Received: {policy!r}")
  tf_keras.mixed_precision.set_global_policy(policy)


def wrap_optimizer(optimizer, policy: str):
  """`optimizer`, with dynamic loss scaling for "mixed_float16".

  float16 gradients underflow without it; bfloat16 has float32's exponent
  range and needs none. Call in the strategy's scope.

  Args:
    optimizer: a tf_keras (legacy) optimizer.
    policy: str. One of `PRECISIONS`.

  Returns:
    A `tf_keras.mixed_precision.LossScaleOptimizer` for "mixed_float16",
    else `optimizer` itself.
  """
  if policy == "mixed_float16":
    return tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def replica_note(strategy: tf.distribute.Strategy,
                 global_batch_size: Optional[int] = None) -> str:
  """One line describing the strategy, for the training log."""
  resolver = getattr(strategy, "cluster_resolver", None)
  workers = ""
  if resolver is not None and resolver.task_type:
    workers = (f", task {resolver.task_type}:{resolver.task_id} of "
               f"{json.dumps(resolver.cluster_spec().as_dict())}")
  batch = ""
  if global_batch_size:
    batch = (f", global batch {global_batch_size} = "
             f"{global_batch_size // strategy.num_replicas_in_sync} per "
             "replica")
  return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} "
          f"replicas{workers}{batch}")
