"""Tests for `training.layer_wise_schedule`: PKT rates, gates, soft freezing.

The schedule is checked against a plain-Python transcription of the
original's TF1 formulas (google-research `mobilebert/distill_util.py`), with
the documented one-step shift; the optimizer against a NumPy LAMB
(tf-models-official's formulas) times the block's rate, step by step.
"""

import doctest
import json
import math
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobilebert_tf import MobileBertConfig
from mobilebert_tf import _compat
from mobilebert_tf import encoder as encoder_lib
from mobilebert_tf import optimization
from tests import helpers
from training import layer_wise_schedule as lws

NUM_BLOCKS, STEPS_PER_STAGE = 3, 4
LEARNING_RATE, WEIGHT_DECAY = 0.1, 0.01

# === The original's formulas (TF1 semantics), in plain Python ===


def _tf1_polynomial_decay(learning_rate, step, decay_steps, end, power):
  """`tf.compat.v1.train.polynomial_decay` with `cycle=False`."""
  step = min(step, decay_steps)
  return (learning_rate - end) * (1 - step / decay_steps) ** power + end


def _tf1_piecewise_constant(x, boundaries, values):
  """`tf.compat.v1.train.piecewise_constant`: inclusive boundaries."""
  for boundary, value in zip(boundaries, values):
    if x <= boundary:
      return value
  return values[-1]


def _background_at(t, steps_per_stage):
  """`get_background_lr` at truncated step t (it takes `global_step % S`)."""
  if steps_per_stage == 1:
    return 1.0
  return min(_tf1_polynomial_decay(1.0, t, steps_per_stage, 0.9, 0.5),
             _tf1_polynomial_decay(0.0, t, steps_per_stage, 10.0, 1.0))


def reference_schedule(step, num_blocks, steps_per_stage):
  """(stage, background, loss gates, block rates) of our 0-based step.

  Within the stages: the original's formulas with `piecewise_constant` at
  `step + 1` (the documented shift); past them, the last stage continues.
  """
  s = steps_per_stage
  if step < num_blocks * s:
    pieces = [_tf1_piecewise_constant(step + 1, [k * s, (k + 1) * s],
                                      [0.0, 1.0, 0.1])
              for k in range(num_blocks)]
    background = _background_at(step % s, s)
  else:
    pieces = [0.1] * (num_blocks - 1) + [1.0]
    background = _background_at(step - (num_blocks - 1) * s, s)
  # `layer_wise_learning_rate(binary=True)`: background 1, gate = piece > .5.
  gates = [1.0 if p > 0.5 else 0.0 for p in pieces]
  rates = [3.0 * background * p for p in pieces]
  return gates.index(1.0), background, gates, rates


# === Schedule ===


@pytest.mark.parametrize("num_blocks, num_distill_steps", [
    (3, 30), (3, 32), (2, 3), (4, 8)], ids=str)
def test_schedule_matches_the_original(num_blocks, num_distill_steps):
  schedule = lws.LayerWiseSchedule.from_total_steps(num_blocks,
                                                    num_distill_steps)
  s = num_distill_steps // num_blocks
  assert (schedule.num_blocks, schedule.steps_per_stage) == (num_blocks, s)
  steps = tf.range(num_distill_steps, dtype=tf.int64)
  expected = [reference_schedule(i, num_blocks, s)
              for i in range(num_distill_steps)]
  stages = schedule.stage(steps)
  assert stages.dtype == tf.int32
  np.testing.assert_array_equal(stages, [e[0] for e in expected])
  np.testing.assert_allclose(schedule.background(steps),
                             [e[1] for e in expected], rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(schedule.layer_gates(steps),
                                [e[2] for e in expected])
  rates = schedule.block_rates(steps)
  assert rates.shape == (num_distill_steps, num_blocks)
  assert rates.dtype == tf.float32
  np.testing.assert_allclose(rates, [e[3] for e in expected], rtol=1e-6,
                             atol=1e-7)
  if s > 1:
    # The shift moves only the zero-rate steps' stage: the rates are the
    # original's at the same step, the loss gates too except at those steps.
    for step in range(num_blocks * s):
      pieces = [_tf1_piecewise_constant(step, [k * s, (k + 1) * s],
                                        [0.0, 1.0, 0.1])
                for k in range(num_blocks)]
      original = [3.0 * _background_at(step % s, s) * p for p in pieces]
      np.testing.assert_allclose(rates[step], original, rtol=1e-6,
                                 atol=1e-7)
      gates_agree = [p > 0.5 for p in pieces] == [e == 1.0 for e in
                                                  expected[step][2]]
      assert gates_agree == (step % s != 0), step
  # Scalar steps (Python int, int32 tensor) give the same values.
  for step in (0, num_distill_steps - 1):
    np.testing.assert_allclose(schedule.block_rates(step), rates[step])
    np.testing.assert_allclose(
        schedule.block_rates(tf.constant(step, tf.int32)), rates[step])


def test_schedule_landmarks():
  schedule = lws.LayerWiseSchedule(num_blocks=3, steps_per_stage=10)
  background = schedule.background(tf.range(32)).numpy()
  # Zero at each stage's first step, then (S=10: one ramp step) the decay
  # 0.1 * sqrt(1 - t/S) + 0.9; past the last stage 0.9.
  assert background[0] == background[10] == background[20] == 0.0
  assert background[1] == pytest.approx(0.1 * math.sqrt(0.9) + 0.9,
                                        rel=1e-6)
  assert background[19] == pytest.approx(0.1 * math.sqrt(0.1) + 0.9,
                                         rel=1e-6)
  np.testing.assert_allclose(background[30:], 0.9, rtol=1e-6)
  np.testing.assert_allclose(schedule.block_rates(15),
                             [0.3 * background[15], 3 * background[15], 0],
                             rtol=1e-6)
  # The linear warm-up over ~10% of a longer stage: 10 * t / S up to t ~
  # 9.95, where it meets the decay.
  long = lws.LayerWiseSchedule(num_blocks=2, steps_per_stage=100)
  np.testing.assert_allclose(long.background([100, 105, 109]),
                             [0.0, 0.5, 0.9], rtol=1e-6, atol=1e-7)
  assert float(long.background(110)) == pytest.approx(
      0.1 * math.sqrt(0.9) + 0.9, rel=1e-6)
  # One step per stage: the original's constant background 1, no dead step.
  np.testing.assert_allclose(
      lws.LayerWiseSchedule(2, 1).block_rates([0, 1, 2]),
      [[3.0, 0.0], [0.3, 3.0], [0.3, 3.0]], rtol=1e-6)


def test_schedule_in_tf_function_and_docstring():
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  step = tf.Variable(0, dtype=tf.int64)
  rates = tf.function(lambda: schedule.block_rates(step))
  for value in (0, 5, 11, 40):
    step.assign(value)
    np.testing.assert_allclose(
        rates(), reference_schedule(value, NUM_BLOCKS, STEPS_PER_STAGE)[3],
        rtol=1e-6)
  result = doctest.testmod(lws)
  assert result.attempted >= 3 and result.failed == 0


# === Optimizer against a NumPy LAMB ===


def _block_variables(seed=0, strategy=None):
  """Three "blocks" of a decayed kernel and an undecayed bias; the map."""
  rng = np.random.default_rng(seed)
  variables, block_of = [], {}
  with (strategy or tf.distribute.get_strategy()).scope():
    for block in range(NUM_BLOCKS):
      for name, shape in (("kernel", (4, 3)), ("bias", (3,))):
        variable = tf.Variable(rng.normal(size=shape).astype(np.float32),
                               name=f"block_{block}/{name}")
        variables.append(variable)
        block_of[variable.ref()] = block
  return variables, block_of


def _gradients(num_steps, seed=1):
  rng = np.random.default_rng(seed)
  return [[rng.normal(size=s).astype(np.float32) for s in
           ((4, 3), (3,)) * NUM_BLOCKS] for _ in range(num_steps)]


def numpy_lamb_step(weights, moments, gradients, names, rates, step,
                    learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY):
  """tf-models-official's LAMB step, times the rate, moments gated.

  Args:
    weights, moments: lists of float64 arrays; moments are (m, v) pairs.
    gradients: list of arrays, clipped here at global norm 1.
    names: variable names (weight decay and trust ratio by
      `optimization.uses_weight_decay`).
    rates: each variable's rate factor.
    step: int. The optimizer's 0-based step.

  Returns:
    (new weights, new moments).
  """
  # The optimizer's float32 hyperparameters (1 - float32(0.999) is 1.3e-5
  # off 0.001).
  beta_1, beta_2, epsilon, learning_rate, weight_decay = (
      float(np.float32(x)) for x in (0.9, 0.999, 1e-6, learning_rate,
                                     weight_decay))
  norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64)))
                       for g in gradients))
  scale = 1.0 / max(norm, 1.0)
  t = step + 1
  new_weights, new_moments = [], []
  for w, (m, v), g, name, rate in zip(weights, moments, gradients, names,
                                      rates):
    g = g.astype(np.float64) * scale
    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g * g
    update = (m / (1 - beta_1 ** t)) / (np.sqrt(v / (1 - beta_2 ** t)) +
                                        epsilon)
    ratio = 1.0
    if optimization.uses_weight_decay(name):
      update = update + weight_decay * w
      w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
      if w_norm > 0 and u_norm > 0:
        ratio = w_norm / u_norm
    new_weights.append(w - rate * learning_rate * ratio * update)
    keep = 1.0 if rate > 0 else 0.0
    new_moments.append((m * keep, v * keep))
  return new_weights, new_moments


def _apply_function(optimizer, variables):
  """A tf.function applying a list of gradients to `variables`."""

  @tf.function
  def apply(gradients):
    optimizer.apply_gradients(zip(gradients, variables))

  return apply


def _relative_error(actual, expected):
  """Norm-wise (elements can cancel to near 0 in float32)."""
  return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


def test_soft_freezing_matches_numpy_lamb():
  variables, block_of = _block_variables()
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  optimizer = lws.create_layer_wise_optimizer(
      LEARNING_RATE, schedule, block_of, weight_decay_rate=WEIGHT_DECAY)
  _compat.create_optimizer_slots(optimizer, variables)
  apply = _apply_function(optimizer, variables)
  blocks = [block_of[v.ref()] for v in variables]
  names = [v.name for v in variables]
  num_steps = NUM_BLOCKS * STEPS_PER_STAGE + 2
  for step, gradients in enumerate(_gradients(num_steps)):
    assert int(optimizer.iterations) == step
    before = [v.numpy() for v in variables]
    moments = [(optimizer.get_slot(v, "m").numpy().astype(np.float64),
                optimizer.get_slot(v, "v").numpy().astype(np.float64))
               for v in variables]
    rates = reference_schedule(step, NUM_BLOCKS, STEPS_PER_STAGE)[3]
    var_rates = [rates[b] for b in blocks]
    expected, expected_moments = numpy_lamb_step(
        [w.astype(np.float64) for w in before], moments, gradients, names,
        var_rates, step)
    apply([tf.constant(g) for g in gradients])
    for i, variable in enumerate(variables):
      after = variable.numpy()
      context = f"step {step}, {variable.name}"
      if var_rates[i] == 0:
        # Frozen (a later block, or any block at a stage's first step):
        # bit for bit unchanged, moments reset.
        np.testing.assert_array_equal(after, before[i], err_msg=context)
        assert not np.any(optimizer.get_slot(variable, "m").numpy()), context
        assert not np.any(optimizer.get_slot(variable, "v").numpy()), context
        continue
      assert _relative_error(after - before[i],
                             expected[i] - before[i]) <= 1e-5, context
      for name, value in zip("mv", expected_moments[i]):
        slot = optimizer.get_slot(variable, name).numpy()
        assert _relative_error(slot, value) <= 1e-5, (context, name)
    if step == STEPS_PER_STAGE + 2:
      # Stage 1: block 0 (earlier) moves 0.1x as far as it would at the
      # current block's rate.
      full, _ = numpy_lamb_step(
          [w.astype(np.float64) for w in before], moments, gradients, names,
          [rates[1]] * len(variables), step)
      for i in (0, 1):  # block 0's kernel and bias
        moved = np.linalg.norm(variables[i].numpy() - before[i])
        assert moved / np.linalg.norm(full[i] - before[i]) == pytest.approx(
            0.1, rel=1e-5)
  assert int(optimizer.iterations) == num_steps


def test_real_encoder_blocks():
  config = MobileBertConfig.from_dict(dict(helpers.TINY_CONFIG,
                                           num_hidden_layers=3))
  encoder = encoder_lib.build_encoder(config)
  block_of = lws.block_variable_map(encoder)
  for index, block in enumerate(encoder.transformer_layers):
    refs = {v.ref() for v in block.trainable_variables}
    assert refs and {r for r, b in block_of.items() if b == index} == refs
  embedding = encoder.embedding_layer.trainable_variables
  assert embedding and not {v.ref() for v in embedding} & set(block_of)
  schedule = lws.LayerWiseSchedule(num_blocks=3, steps_per_stage=2)
  optimizer = lws.create_layer_wise_optimizer(1e-3, schedule, block_of)
  with pytest.raises(ValueError, match="not in `block_of_variable`") as error:
    _compat.create_optimizer_slots(optimizer, encoder.trainable_variables)
  assert encoder.get_embedding_table().name in str(error.value)
  variables = [r.deref() for r in block_of]
  _compat.create_optimizer_slots(optimizer, variables)
  optimizer.iterations.assign(3)  # stage 1, its second step
  rng = np.random.default_rng(0)
  gradients = [tf.constant(rng.normal(size=v.shape), v.dtype)
               for v in variables]
  before = [v.numpy() for v in variables]
  # Eagerly: tracing ~100 variables' updates takes seconds (tf.function is
  # tested on the plain variables).
  optimizer.apply_gradients(zip(gradients, variables))
  for variable, old in zip(variables, before):
    changed = not np.array_equal(variable.numpy(), old)
    assert changed == (block_of[variable.ref()] < 2), variable.name


def _run_steps(optimizer, variables, gradients, strategy=None, scale=1.0):
  """Applies each step's gradients in one tf.function (per replica)."""
  strategy = strategy or tf.distribute.get_strategy()
  lso = isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer)

  def replica_step(grads):
    with tf.GradientTape() as tape:
      loss = tf.add_n([tf.reduce_sum(v * g * scale)
                       for v, g in zip(variables, grads)])
      if lso:
        loss = optimizer.get_scaled_loss(loss)
    grads = tape.gradient(loss, variables)
    if lso:
      grads = optimizer.get_unscaled_gradients(grads)
    optimizer.apply_gradients(zip(grads, variables))

  step = tf.function(lambda grads: strategy.run(replica_step, args=(grads,)))
  for grads in gradients:
    step([tf.constant(g) for g in grads])


def test_mirrored_loss_scaled_equals_plain():
  gradients = _gradients(2 * STEPS_PER_STAGE)
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  plain, block_of = _block_variables()
  optimizer = lws.create_layer_wise_optimizer(LEARNING_RATE, schedule,
                                              block_of)
  _run_steps(optimizer, plain, gradients)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  mirrored, block_of = _block_variables(strategy=strategy)
  with strategy.scope():
    wrapped = tf_keras.mixed_precision.LossScaleOptimizer(
        lws.create_layer_wise_optimizer(LEARNING_RATE, schedule, block_of))
    _compat.create_optimizer_slots(wrapped, mirrored)
  _run_steps(wrapped, mirrored, gradients, strategy)
  assert int(wrapped.iterations.numpy()) == len(gradients)
  for a, b in zip(plain, mirrored):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7,
                               err_msg=a.name)


def test_mixed_float16_autocast_variables():
  """Keras layers' variables under mixed_float16 are AutoCastVariables."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
      # Fixed weights: with random ones (the suite's RNG state varies) the
      # float16 gradients at the initial loss scale 2**15 can overflow, and
      # the LossScaleOptimizer rightly skips both steps.
      blocks = [tf_keras.layers.Dense(
          3, kernel_initializer=tf_keras.initializers.Constant(0.1),
          bias_initializer="ones") for _ in range(2)]
      for block in blocks:
        block.build((None, 3))
      block_of = {v.ref(): i for i, block in enumerate(blocks)
                  for v in block.trainable_variables}
      optimizer = tf_keras.mixed_precision.LossScaleOptimizer(
          lws.create_layer_wise_optimizer(
              LEARNING_RATE, lws.LayerWiseSchedule(2, 3), block_of))
      variables = [r.deref() for r in block_of]
      _compat.create_optimizer_slots(optimizer, variables)
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)
  assert blocks[0].compute_dtype == "float16"

  def replica_step():
    with tf.GradientTape() as tape:
      outputs = blocks[1](blocks[0](tf.ones((2, 3), tf.float16)))
      loss = optimizer.get_scaled_loss(
          tf.reduce_sum(tf.cast(outputs, tf.float32)))
    gradients = optimizer.get_unscaled_gradients(
        tape.gradient(loss, variables))
    optimizer.apply_gradients(zip(gradients, variables))

  step = tf.function(lambda: strategy.run(replica_step))
  before = [v.numpy() for v in variables]
  for _ in range(2):  # step 0: no rate; step 1: stage 0
    step()
  changed = [not np.array_equal(v.numpy(), b)
             for v, b in zip(variables, before)]
  assert changed == [block_of[v.ref()] == 0 for v in variables]


def test_sparse_gradients_equal_dense():
  schedule = lws.LayerWiseSchedule(num_blocks=1, steps_per_stage=10)
  rng = np.random.default_rng(0)
  initial = rng.normal(size=(5, 3)).astype(np.float32)
  results = []
  for sparse in (False, True):
    variable = tf.Variable(initial, name="table/kernel")
    optimizer = lws.create_layer_wise_optimizer(
        LEARNING_RATE, schedule, {variable.ref(): 0})
    grad_rng = np.random.default_rng(1)
    for _ in range(3):
      grad = grad_rng.normal(size=(5, 3)).astype(np.float32)
      if sparse:  # every row once, shuffled
        order = np.array([3, 0, 4, 1, 2])
        grad = tf.IndexedSlices(tf.constant(grad[order]),
                                tf.constant(order), tf.constant([5, 3]))
      optimizer.apply_gradients([(grad, variable)])
    results.append(variable.numpy())
  assert not np.allclose(results[0], initial)
  np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)


def test_checkpoint_round_trip(tmp_path):
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  gradients = _gradients(STEPS_PER_STAGE + 3)
  runs = []
  for _ in range(2):
    variables, block_of = _block_variables()
    optimizer = lws.create_layer_wise_optimizer(LEARNING_RATE, schedule,
                                                block_of)
    _compat.create_optimizer_slots(optimizer, variables)
    runs.append((variables, optimizer,
                 tf.train.Checkpoint(optimizer=optimizer,
                                     variables=variables)))
  (first, optimizer, checkpoint), (second, restored, restore) = runs
  _run_steps(optimizer, first, gradients[:-1])
  path = checkpoint.save(str(tmp_path / "ckpt"))
  restore.restore(path).assert_consumed()
  assert int(restored.iterations) == int(optimizer.iterations) == (
      STEPS_PER_STAGE + 2)
  np.testing.assert_array_equal(schedule.block_rates(restored.iterations),
                                schedule.block_rates(optimizer.iterations))
  # One more step each: the same rates and moments, the same weights.
  _run_steps(optimizer, first, gradients[-1:])
  _run_steps(restored, second, gradients[-1:])
  for a, b in zip(first, second):
    np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.name)
    for name in "mv":
      np.testing.assert_array_equal(restored.get_slot(b, name),
                                    optimizer.get_slot(a, name))


# === Two replicas (a fresh process: it needs two logical CPUs) ===


def _two_replicas_main(out_dir):
  """Trains the blocks without a strategy and with two replicas; saves both.

  Each replica gets half of the gradient (the replicas' gradients are
  summed), so both runs see the same gradients.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  gradients = _gradients(NUM_BLOCKS * STEPS_PER_STAGE)
  plain, block_of = _block_variables()
  _run_steps(lws.create_layer_wise_optimizer(LEARNING_RATE, schedule,
                                             block_of), plain, gradients)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  mirrored, block_of = _block_variables(strategy=strategy)
  with strategy.scope():
    optimizer = lws.create_layer_wise_optimizer(LEARNING_RATE, schedule,
                                                block_of)
  _run_steps(optimizer, mirrored, gradients, strategy, scale=0.5)
  result = {"replicas": strategy.num_replicas_in_sync,
            "iterations": int(optimizer.iterations.numpy())}
  for a, b in zip(plain, mirrored):
    copies = strategy.experimental_local_results(b)
    result[a.name] = {"plain": a.numpy().tolist(),
                      "replicas": [c.numpy().tolist() for c in copies]}
  with open(os.path.join(out_dir, "result.json"), "w") as f:
    json.dump(result, f)


def test_two_replicas_equal_no_strategy(tmp_path):
  helpers.run_test_module("test_layer_wise_schedule", tmp_path)
  with open(tmp_path / "result.json") as f:
    result = json.load(f)
  assert result.pop("replicas") == 2
  assert result.pop("iterations") == NUM_BLOCKS * STEPS_PER_STAGE
  initial, _ = _block_variables()
  assert len(result) == len(initial)
  for variable in initial:
    values = result[variable.name]
    # Biases too: replica 1's copy ("bias/replica_1") follows the bias rule.
    for copy in values["replicas"]:
      np.testing.assert_allclose(copy, values["plain"], rtol=1e-6,
                                 atol=1e-7, err_msg=variable.name)
    assert not np.allclose(values["plain"], variable.numpy())


# === Bad input ===


@pytest.mark.parametrize("make, error, message", [
    (lambda: lws.LayerWiseSchedule(0, 5), ValueError, "`num_blocks`"),
    (lambda: lws.LayerWiseSchedule(True, 5), ValueError, "`num_blocks`"),
    (lambda: lws.LayerWiseSchedule(3, -1), ValueError, "`steps_per_stage`"),
    (lambda: lws.LayerWiseSchedule(3, 2.0), ValueError, "`steps_per_stage`"),
    (lambda: lws.LayerWiseSchedule.from_total_steps(24, 10), ValueError,
     "--num_distill_steps must be at least the student's number of blocks "
     r"\(24\).*num_distill_steps=10"),
    (lambda: lws.LayerWiseSchedule.from_total_steps(24, 0), ValueError,
     "`num_distill_steps` must be a positive integer"),
], ids=["blocks_0", "blocks_bool", "steps_negative", "steps_float",
        "fewer_steps_than_blocks", "steps_0"])
def test_schedule_rejects(make, error, message):
  with pytest.raises(error, match=message):
    make()


def test_optimizer_rejects():
  schedule = lws.LayerWiseSchedule(NUM_BLOCKS, STEPS_PER_STAGE)
  variables, block_of = _block_variables()
  stray = tf.Variable(tf.zeros([2]), name="stray/kernel")
  optimizer = lws.create_layer_wise_optimizer(1e-3, schedule, block_of)
  with pytest.raises(ValueError, match=r"1 variables are not in "
                     r"`block_of_variable`: stray/kernel:0\. In the "
                     "layer-wise phase pass only"):
    optimizer.apply_gradients([(tf.ones([2]), stray)])
  with pytest.raises(ValueError, match="maps block_0/kernel:0 to block 3; "
                     r"blocks are integers in \[0, 3\)"):
    lws.create_layer_wise_optimizer(1e-3, schedule, {variables[0].ref(): 3})
  with pytest.raises(TypeError, match="keys must be variable references"):
    lws.create_layer_wise_optimizer(1e-3, schedule, {"block_0/kernel": 0})
  with pytest.raises(TypeError, match="`schedule` must be a "
                     "LayerWiseSchedule. Received: dict"):
    lws.LayerWiseLAMB({}, block_of)
  with pytest.raises(ValueError, match="`learning_rate` must be a positive "
                     "number. Received: learning_rate=0"):
    lws.create_layer_wise_optimizer(0, schedule, block_of)
  with pytest.raises(ValueError, match="`weight_decay_rate`"):
    lws.create_layer_wise_optimizer(1e-3, schedule, block_of, -0.1)


if __name__ == "__main__":
  _two_replicas_main(sys.argv[1])
