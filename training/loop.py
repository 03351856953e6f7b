"""One custom training loop for every trainer: strategy, checkpoints, resume.

`Trainer` runs a model's training steps under any `tf.distribute.Strategy`
(`training.distribution`): `strategy.run` of one step per replica inside a
`tf.function` that loops `steps_per_loop` times with `tf.range`, gradients
summed over replicas by the optimizer (the per-replica losses must already
be scaled by the GLOBAL batch: see `training.pretraining_losses`).

Fault tolerance. Everything a resumed run needs is in one
`tf.train.Checkpoint`: the model's `checkpoint_items`, the optimizer (slots
and `iterations`, hence the learning rate), `step` and `examples_seen` (the
input-pipeline position). `tf.train.CheckpointManager` writes a checkpoint's
files completely before it rewrites the `checkpoint` state file (atomically,
in a callback run after the save): a run killed at any moment, even in the
middle of a save, leaves `latest_checkpoint` naming a complete checkpoint,
and files of an interrupted save are never read (and are overwritten by the
next save of the same step). Started again with the same arguments,
`Trainer.train` restores the latest checkpoint and continues at its step.

The input position is restored by rebuilding the deterministic input
pipeline (`deterministic_input_fn`: repeat, seeded shuffle, shard by input
pipeline, skip the examples already consumed, batch) rather than by
checkpointing the `tf.data` iterator: iterator checkpoints hold the shuffle
buffer (large), are not supported for every distributed iterator (TPU,
multi-worker), and tie the checkpoint to the pipeline's exact graph. With
the same seed and op determinism (`tf.config.experimental.
enable_op_determinism()`) an interrupted and resumed run ends with the same
weights, bit for bit, as an uninterrupted one, provided the model has no
dropout: tf_keras' dropout draws from stateful random ops whose state is not
checkpointable, so a resumed run draws other (equally random) masks.

Multi-worker: every worker saves (as the TF multi-worker guide asks), but
only the chief into `model_dir`; the others save into
`model_dir/workertemp_<task id>` and delete it at once. All restore from
`model_dir`, which must be a file system every worker sees.

Example:

>>> with strategy.scope():
...   model = build_pretrainer(config, with_nsp=True)
...   optimizer = create_optimizer("lamb", 1e-3, num_train_steps=1000)
...   trainer = Trainer(strategy, model, optimizer, pretraining_loss,
...                     model_dir="out", train_input_fn=input_fn,
...                     global_batch_size=256,
...                     checkpoint_items=model.checkpoint_items)
>>> trainer.train(1000)
"""

import math
import os
import shutil
import sys
import time
from typing import Callable, Dict, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras

from mobilebert_tf import _compat
from mobilebert_tf import optimization
from training import distribution

# A per-replica `loss_fn(features, outputs) -> {name: scalar}`; "loss" is
# minimized.
LossFn = Callable[[Mapping[str, tf.Tensor], Mapping[str, tf.Tensor]],
                  Mapping[str, tf.Tensor]]


class NonFiniteLossError(RuntimeError):
  """The training loss (or the weights) became NaN or infinite.

  Nothing was saved after it: the last good checkpoint stays the latest.

  Attributes:
    step: int. The step whose loss (or whose updated weights) was not
      finite.
    losses: dict. The loss terms of that loop.
    latest_checkpoint: str or None. The last good checkpoint, still the
      latest in `model_dir`.
  """

  def __init__(self, step, losses, latest_checkpoint, what="training loss"):
    self.step = step
    self.losses = dict(losses)
    self.latest_checkpoint = latest_checkpoint
    terms = ", ".join(f"{k} {v:.4g}" for k, v in self.losses.items())
    where = (f"the latest checkpoint is still {latest_checkpoint}"
             if latest_checkpoint else "no checkpoint was written")
    super().__init__(
        f"the {what} is not finite at step {step} ({terms}); training "
        f"stopped without saving ({where}). Lower --learning_rate, add "
        "--num_warmup_steps, or check the input data")


def deterministic_input_fn(make_examples: Callable[[], tf.data.Dataset],
                           global_batch_size: int,
                           seed: int,
                           examples_to_skip: int = 0,
                           shuffle_buffer_size: int = 10000,
                           repeat: bool = True,
                           drop_remainder: bool = True,
                           map_fn: Optional[Callable] = None):
  """An input function for `strategy.distribute_datasets_from_function`.

  The order of examples is a function of `seed` only: the examples of
  `make_examples()` (in a fixed order), shuffled with `seed` (anew each
  epoch), repeated, then split between the input pipelines (one per
  worker) element by element; each pipeline skips its share of
  `examples_to_skip` and batches at the per-replica batch size. Each global
  step thus takes the same `global_batch_size` examples (in another order)
  whatever the number of workers and replicas, so the summed gradient is
  the same.

  Args:
    make_examples: callable returning an unbatched `tf.data.Dataset` of
      feature dicts, in a deterministic order.
    global_batch_size: int. Examples per step over all replicas; must be
      divisible by the number of replicas.
    seed: int. The shuffle seed.
    examples_to_skip: int. Examples (global) consumed by earlier steps, e.g.
      `Trainer.examples_seen` after a restore. Defaults to 0.
    shuffle_buffer_size: int. Examples in the shuffle buffer; 0 or 1 for
      none. Defaults to 10000.
    repeat: bool. Repeat forever (training). Defaults to True.
    drop_remainder: bool. Drop a last partial batch (static shapes for
      TPUs). Defaults to True.
    map_fn: optional function applied to each example after the skip (e.g.
      parsing serialized records: skipped examples are never parsed).

  Returns:
    `fn(input_context) -> tf.data.Dataset` of per-replica batches.
  """

  def input_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    dataset = make_examples()
    if shuffle_buffer_size and shuffle_buffer_size > 1:
      # Reshuffled each epoch, in an order that depends on `seed` only.
      dataset = dataset.shuffle(shuffle_buffer_size, seed=seed,
                                reshuffle_each_iteration=True)
    if repeat:
      dataset = dataset.repeat()
    pipelines = input_context.num_input_pipelines
    if pipelines > 1:
      # After the shuffle: every worker shuffles alike and takes every
      # `pipelines`-th example, so the workers' shares of a step make up the
      # examples a single worker would take.
      dataset = dataset.shard(pipelines, input_context.input_pipeline_id)
    if examples_to_skip:
      dataset = dataset.skip(examples_to_skip // pipelines)
    if map_fn is not None:
      dataset = dataset.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=True)
    dataset = dataset.batch(
        input_context.get_per_replica_batch_size(global_batch_size),
        drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    # Sharded above; auto-sharding would shard a second time.
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

  return input_fn


class Trainer:
  """Trains a model under a strategy, with checkpoints, summaries, resume.

  Build the model, the optimizer and the metrics in `strategy.scope()`,
  then the Trainer (it creates its counters in the scope itself).

  Args:
    strategy: the `tf.distribute.Strategy`.
    model: a Keras model called as `model(features, training=True)`.
    optimizer: a tf_keras (legacy) optimizer, or a `LossScaleOptimizer`
      (mixed_float16; `distribution.wrap_optimizer`).
    loss_fn: per-replica `loss_fn(features, outputs) -> {name: scalar}`,
      each the replica's share of the global-batch value (the replicas'
      values are SUMMED); "loss" is minimized.
    model_dir: str. Checkpoints (`ckpt-<step>`), summaries (`train/`,
      `eval/`).
    train_input_fn: `fn(input_context, examples_to_skip) -> tf.data.Dataset`
      of per-replica batches (e.g. `functools.partial` of
      `deterministic_input_fn`'s arguments); called after the restore with
      the examples already consumed.
    global_batch_size: int. Examples per step over all replicas.
    checkpoint_items: dict of the model's objects to checkpoint. Defaults to
      `{"model": model}`.
    loss_names: the keys of `loss_fn`'s dict to average and show. Defaults
      to ("loss",).
    metrics: dict name -> `tf_keras.metrics.Metric`, made in the scope.
    update_metrics: `fn(metrics, features, outputs)`, run per replica.
    save_checkpoints_steps: int. Save every this many steps (and at the
      end). Defaults to 1000.
    keep_checkpoint_max: int. Checkpoints kept. Defaults to 5.
    steps_per_loop: int. Steps per `tf.function` call (progress, summaries
      and the loss check happen between calls). Defaults to 1.
    log: callable taking one line. Defaults to `print` (flushed).
    progress: bool. Show a Keras progress bar (chief only). Defaults to True.
    on_loop_end: optional `fn(step)` called after each loop and save.
    variables: the variables to train (e.g. a phase of distillation trains
      some of the model's). Defaults to `model.trainable_variables`.
  """

  def __init__(self, strategy: tf.distribute.Strategy, model, optimizer,
               loss_fn: LossFn, model_dir: str, train_input_fn=None,
               global_batch_size: int = None,
               checkpoint_items: Optional[Mapping[str, object]] = None,
               loss_names: Sequence[str] = ("loss",),
               metrics: Optional[Mapping[str, tf_keras.metrics.Metric]] = None,
               update_metrics=None,
               save_checkpoints_steps: int = 1000,
               keep_checkpoint_max: int = 5,
               steps_per_loop: int = 1,
               log: Callable[[str], None] = None,
               progress: bool = True,
               on_loop_end: Optional[Callable[[int], None]] = None,
               variables: Optional[Sequence[tf.Variable]] = None):
    for name, value in (("save_checkpoints_steps", save_checkpoints_steps),
                        ("keep_checkpoint_max", keep_checkpoint_max),
                        ("steps_per_loop", steps_per_loop)):
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: "
                         f"{name}={value!r}")
    if "loss" not in loss_names:
      raise ValueError("`loss_names` must include 'loss' (the minimized "
                       f"term). Received: {tuple(loss_names)!r}")
    self.strategy = strategy
    self.model = model
    self.optimizer = optimizer
    self.loss_fn = loss_fn
    self.model_dir = model_dir
    self.train_input_fn = train_input_fn
    self.global_batch_size = global_batch_size
    self.loss_names = tuple(loss_names)
    self.metrics = dict(metrics or {})
    self.update_metrics = update_metrics
    self.save_checkpoints_steps = save_checkpoints_steps
    self.steps_per_loop = steps_per_loop
    self.log = log or (lambda line: print(line, flush=True))
    self.is_chief = distribution.is_chief(strategy)
    self.progress = progress and self.is_chief
    self.on_loop_end = on_loop_end
    self.variables = list(model.trainable_variables if variables is None
                          else variables)
    with strategy.scope():
      # Both counters are changed only in cross-replica context (once per
      # step), so every replica's copy holds the same value.
      counter = dict(dtype=tf.int64, trainable=False,
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.step = tf.Variable(0, name="step", **counter)
      self.examples_seen = tf.Variable(0, name="examples_seen", **counter)
      self._loss_sums = {n: tf.Variable(0.0, name=f"sum_{n}", trainable=False,
                                        aggregation=tf.VariableAggregation.
                                        ONLY_FIRST_REPLICA)
                         for n in self.loss_names}
      self._loss_steps = tf.Variable(0.0, trainable=False, aggregation=tf.
                                     VariableAggregation.ONLY_FIRST_REPLICA)
      _compat.create_optimizer_slots(optimizer, self.variables)
    items = dict(checkpoint_items or {"model": model})
    clash = {"optimizer", "step", "examples_seen"} & set(items)
    if clash:
      raise ValueError(f"`checkpoint_items` may not use the names "
                       f"{sorted(clash)} (the Trainer's own).")
    self._items = items
    self.checkpoint = tf.train.Checkpoint(
        **items, optimizer=optimizer, step=self.step,
        examples_seen=self.examples_seen)
    # The tf.distribute convention: only the chief writes `model_dir`.
    self._write_dir = model_dir if self.is_chief else os.path.join(
        model_dir, f"workertemp_{distribution.task_id(strategy)}")
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self._write_dir, max_to_keep=keep_checkpoint_max,
        step_counter=self.step)
    self._restored = False
    self._writers = {}
    self._train_steps = tf.function(self._train_steps_fn, autograph=False)
    self._weights_finite = tf.function(lambda: tf.reduce_all([
        tf.reduce_all(tf.math.is_finite(v)) for v in
        self.variables if v.dtype.is_floating]), autograph=False)
    self._eval_step = tf.function(self._eval_step_fn, autograph=False)

  # === Checkpoints ===

  @property
  def latest_checkpoint(self) -> Optional[str]:
    """The newest complete checkpoint in `model_dir` (its state file's)."""
    return tf.train.latest_checkpoint(self.model_dir)

  def restore(self, model_only: bool = False) -> Optional[str]:
    """Restores the latest checkpoint of `model_dir`, if any; returns it.

    Files of a newer checkpoint whose save was interrupted (no entry in the
    `checkpoint` state file) are ignored.

    Args:
      model_only: bool. Restore the `checkpoint_items` only, not the
        optimizer and the counters: for evaluation, whatever optimizer
        trained the checkpoint. Defaults to False.
    """
    self._restored = not model_only
    latest = self.latest_checkpoint
    if latest and model_only:
      tf.train.Checkpoint(**self._items).restore(latest).expect_partial(
      ).assert_existing_objects_matched()
      self.step.assign(tf.train.load_variable(latest, "step/.ATTRIBUTES/"
                                              "VARIABLE_VALUE"))
    elif latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
    return latest

  def save(self) -> str:
    """Writes a checkpoint `ckpt-<step>`; returns its prefix in model_dir."""
    step = int(self.step.numpy())
    path = self.manager.save(checkpoint_number=step)
    if not self.is_chief:
      shutil.rmtree(self._write_dir, ignore_errors=True)
      return os.path.join(self.model_dir, os.path.basename(path))
    return path

  # === Steps ===

  def _lso(self):
    return isinstance(self.optimizer,
                      tf_keras.mixed_precision.LossScaleOptimizer)

  def replica_step(self, features):
    """One training step on one replica's batch (run it in `strategy.run`).

    Returns:
      The loss dict of `loss_fn` (this replica's shares).
    """
    variables = self.variables
    with tf.GradientTape() as tape:
      outputs = self.model(features, training=True)
      losses = dict(self.loss_fn(features, outputs))
      loss = losses["loss"]
      if self._lso():
        loss = self.optimizer.get_scaled_loss(loss)
    gradients = tape.gradient(loss, variables)
    if self._lso():
      gradients = self.optimizer.get_unscaled_gradients(gradients)
    self.optimizer.apply_gradients(zip(gradients, variables))
    if self.update_metrics is not None:
      self.update_metrics(self.metrics, features, outputs)
    return losses

  def _train_steps_fn(self, iterator, num_steps):
    # An explicit while loop, without AutoGraph: AutoGraph would also convert
    # every layer's `call` (seconds of tracing), and nothing here needs it.

    def body(done, finite):
      per_replica = self.strategy.run(self.replica_step,
                                      args=(next(iterator),))
      missing = set(self.loss_names) - set(per_replica)
      if missing:
        raise ValueError(f"`loss_fn` returned no {sorted(missing)}; it "
                         f"returned {sorted(per_replica)}.")
      reduced = {n: self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                         per_replica[n], axis=None)
                 for n in self.loss_names}
      updates = [self.step.assign_add(1),
                 self.examples_seen.assign_add(self.global_batch_size),
                 self._loss_steps.assign_add(1.0)]
      updates += [self._loss_sums[n].assign_add(v) for n, v in reduced.items()]
      with tf.control_dependencies(updates):
        return done + 1, tf.math.is_finite(reduced["loss"])

    # Stops after the first step with a non-finite loss.
    _, finite = tf.while_loop(
        lambda done, finite: tf.logical_and(finite, done < num_steps), body,
        (tf.constant(0, tf.int32), tf.constant(True)))
    return finite

  def train_steps(self, iterator, num_steps) -> tf.Tensor:
    """Runs up to `num_steps` steps in one `tf.function` call.

    Stops after the first step whose loss is not finite. Exposed for
    benchmarks: `trainer.train_steps(trainer.make_iterator(), 10)`.

    Returns:
      bool scalar tensor: every loss was finite.
    """
    return self._train_steps(iterator, tf.constant(num_steps, tf.int32))

  def make_iterator(self):
    """A distributed iterator of `train_input_fn` at `examples_seen`."""
    if self.train_input_fn is None:
      raise ValueError("The Trainer was built without `train_input_fn`.")
    skip = int(self.examples_seen.numpy())
    dataset = self.strategy.distribute_datasets_from_function(
        lambda context: self.train_input_fn(context, skip))
    return iter(dataset)

  def _take_loss_means(self) -> Dict[str, float]:
    steps = max(float(self._loss_steps.numpy()), 1.0)
    means = {n: float(v.numpy()) / steps for n, v in self._loss_sums.items()}
    for variable in list(self._loss_sums.values()) + [self._loss_steps]:
      variable.assign(tf.zeros_like(variable))
    return means

  def _take_metrics(self) -> Dict[str, float]:
    results = {n: float(m.result()) for n, m in self.metrics.items()}
    for metric in self.metrics.values():
      metric.reset_state()
    return results

  def learning_rate(self) -> float:
    """The learning rate of the next step."""
    inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
    return optimization.learning_rate_at(inner, inner.iterations)

  def _writer(self, name):
    if name not in self._writers:
      self._writers[name] = (
          tf.summary.create_file_writer(os.path.join(self.model_dir, name))
          if self.is_chief else tf.summary.create_noop_writer())
    return self._writers[name]

  def _write_summaries(self, name, step, values):
    with self._writer(name).as_default(step=step):
      for key, value in values.items():
        tf.summary.scalar(key, value)
    self._writer(name).flush()

  def train(self, num_steps: int) -> Dict[str, float]:
    """Trains until `step == num_steps`, resuming from `model_dir`.

    Saves every `save_checkpoints_steps` steps and at `num_steps`; writes
    summaries (losses, metrics, learning rate, examples/s) to
    `model_dir/train` after every loop.

    Returns:
      The loss means and metrics of the last loop (empty when there was
      nothing left to train).

    Raises:
      NonFiniteLossError: a loss became NaN or infinite (nothing saved after
        the last good checkpoint; the in-memory weights are then invalid).
      tf.errors.OpError: from the input pipeline (corrupt or mismatched
        records), raised by the step that reads them.
    """
    if not self._restored:
      latest = self.restore()
      if latest:
        self.log(f"Resumed from {latest} at step {int(self.step.numpy())} "
                 f"(learning rate {self.learning_rate():.6g}).")
    step = int(self.step.numpy())
    if step >= num_steps:
      self.log(f"Nothing to train: step {step} >= {num_steps} steps.")
      return {}
    iterator = self.make_iterator()
    # A Keras progress bar on a terminal; in a log file (where its carriage
    # returns would pile up on one line) a line per loop instead.
    bar = tf_keras.utils.Progbar(
        num_steps, stateful_metrics=list(self.loss_names) +
        list(self.metrics) + ["examples/s"]) if (
            self.progress and sys.stdout.isatty()) else None
    results = {}
    while step < num_steps:
      next_save = (step // self.save_checkpoints_steps + 1) * \
          self.save_checkpoints_steps
      count = min(self.steps_per_loop, num_steps - step, next_save - step)
      learning_rate = self.learning_rate()
      start = time.time()
      finite = bool(self.train_steps(iterator, count).numpy())
      elapsed = time.time() - start
      done = int(self.step.numpy())
      losses = self._take_loss_means()
      results = dict(losses, **self._take_metrics())
      if not finite:
        # The failing step's own values, not the loop's mean.
        raise NonFiniteLossError(done, {"loss": losses["loss"]},
                                 self.latest_checkpoint)
      throughput = (done - step) * self.global_batch_size / max(elapsed,
                                                                1e-9)
      self._write_summaries("train", done, dict(
          results, learning_rate=learning_rate, examples_per_second=throughput))
      if bar is not None:
        bar.update(done, [(k, v) for k, v in results.items()] +
                   [("examples/s", throughput)])
      elif self.progress:
        self.log(f"step {done}/{num_steps} - " + " - ".join(
            f"{k}: {v:.4f}" for k, v in results.items()) +
                 f" - examples/s: {throughput:.1f}")
      step = done
      if step % self.save_checkpoints_steps == 0 or step == num_steps:
        # A finite loss can still come with an update that overflowed.
        if not bool(self._weights_finite()):
          raise NonFiniteLossError(done, losses, self.latest_checkpoint,
                                   what="model's weights")
        path = self.save()
        if self.is_chief:
          if bar is not None and step < num_steps:
            print(flush=True)  # Ends the bar's line (it has no newline yet).
          self.log(f"Saved checkpoint {path} at step {step}.")
      if self.on_loop_end is not None:
        self.on_loop_end(step)
    return results

  def _eval_step_fn(self, features):

    def replica_fn(features):
      outputs = self.model(features, training=False)
      losses = dict(self.loss_fn(features, outputs))
      if self.update_metrics is not None:
        self.update_metrics(self.metrics, features, outputs)
      return {n: losses[n] for n in self.loss_names}

    per_replica = self.strategy.run(replica_fn, args=(features,))
    return {n: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for n, v in per_replica.items()}

  def evaluate(self, input_fn, max_steps: Optional[int] = None
               ) -> Dict[str, float]:
    """Losses and metrics on a held-out dataset, with the current weights.

    Args:
      input_fn: `fn(input_context) -> tf.data.Dataset` of per-replica
        batches, finite (e.g. `deterministic_input_fn(..., repeat=False,
        shuffle_buffer_size=0)`).
      max_steps: int or None. Evaluate at most this many batches. Defaults to
        all.

    Returns:
      dict: each loss name -> its mean over the batches, each metric ->
      its result over all examples, "eval_steps" -> batches, "step" -> the
      training step of the weights.
    """
    for metric in self.metrics.values():
      metric.reset_state()
    dataset = self.strategy.distribute_datasets_from_function(input_fn)
    sums = {n: 0.0 for n in self.loss_names}
    steps = 0
    for features in dataset:
      if max_steps is not None and steps >= max_steps:
        break
      for name, value in self._eval_step(features).items():
        sums[name] += float(value)
      steps += 1
    if not steps:
      raise ValueError("The evaluation data has no complete batch; pass more "
                       "records or a smaller --eval_batch_size.")
    results = {n: s / steps for n, s in sums.items()}
    results.update(self._take_metrics())
    step = int(self.step.numpy())
    self._write_summaries("eval", step, results)
    results.update(eval_steps=steps, step=step)
    if any(not math.isfinite(v) for v in results.values()):
      self.log("Warning: non-finite evaluation results.")
    return results
