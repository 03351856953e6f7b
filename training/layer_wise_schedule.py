"""Progressive knowledge transfer: the layer-wise phase's rates and gates.

MobileBERT's distillation (Sun et al., 2020, https://arxiv.org/abs/2004.02984,
google-research `mobilebert/`) starts with a layer-wise phase of
`num_distill_steps` steps, split into one stage of `S = num_distill_steps //
num_blocks` steps per student block. During stage `k` only block `k`'s
transfer losses count (its loss gate is 1, the others' 0), block `k` trains
at 3x a "background" rate, the blocks before it keep training at a tenth of
that ("soft freezing"), and the blocks after it, the embeddings and the
heads do not train at all.

The original, in its own terms (`distill_util.layer_wise_learning_rate`,
`get_background_lr`, `lamb_optimizer.LAMBOptimizer`,
`run_pretraining.get_layerwise_gate`), for TF1's global step `g`:

* background: with `t = g mod S`, `min(polynomial_decay(1.0, t, S,
  end=0.9, power=0.5), polynomial_decay(0.0, t, S, end=10.0, power=1))` =
  `min(0.1 * sqrt(1 - t/S) + 0.9, 10 * t/S)`: 0 at `t = 0`, a linear ramp
  that meets the square-root decay at `t/S ~ 0.0995` (value ~0.995), then
  a decay towards 0.9. With `S == 1` it is the constant 1.
* block `k`'s rate factor: `3 * background * piecewise_constant(g,
  [k*S, (k+1)*S], [0, 1, 0.1])`. TF1's boundaries are inclusive (`g <= b0`
  gives `v0`), so block `k` is the current block for `g` in `k*S+1 ..
  (k+1)*S`, earlier at `0.3 * background` after it, and at 0 up to `k*S`.
* its loss gate: 1 where that piecewise value is 1 (`binary=True`).
* in LAMB: the factor multiplies the applied step (`factor * ratio * lr *
  update`, after the trust ratio, so it is not undone by it), and a gate
  `factor > 0` multiplies the new Adam moments: a variable at rate 0 keeps
  zero moments. That covers the later blocks, every variable outside
  `bert/encoder/layer_N` (gate 0 always) and, because the background is 0
  at `t = 0`, every block at the one zero-rate step of each stage: each
  stage starts from fresh moments.
* the base learning rate is constant (`end_lr_rate=1.0`, no warm-up) and
  gradients are clipped at global norm 1.

Here (`LayerWiseSchedule`, `LayerWiseLAMB`), for the 0-based step `s` (the
optimizer's `iterations` before the step's increment):

* stage `k` is the steps `[k*S, (k+1)*S)`; steps from `num_blocks * S` on
  (when `num_distill_steps` is not a multiple of `num_blocks`) stay in the
  last stage.
* background: the original's formula with `t = s - stage * S` (so `t mod
  S` within the stages; past the last stage `t >= S` and `polynomial_decay`
  clamps it: 0.9).
* rates and gates: the original's formulas with `piecewise_constant`
  evaluated at `s + 1` instead of `s` (the background is not moved): the
  stage boundaries move one step earlier. Deliberate: a stage is the
  half-open range of its steps. For `S > 1` the block rates equal the
  original's at every step before `num_blocks * S`: the only steps whose
  stage changes are the multiples of `S`, where the background is 0 (the
  original counts that zero-rate step as the last of the previous stage,
  we as the first of the next). There only the stage and the loss gates
  differ: the reported loss changes, the training does not (no variable
  moves, the moments are reset). With `S == 1`
  (no zero-rate steps) the shift is real: the original's step 0 trains
  nothing and its last block's stage would start after the phase's end;
  here each block trains for its one step.
* past the last stage the original would give every loss gate 0 and every
  block `0.3 * background` (steps of momentum and weight decay only); here
  the last block stays current.
* zero-rate variables get their moments zeroed after the step, as the
  original's gate does.
* embeddings and heads are not passed to the optimizer at all in this
  phase. The original passes them with gate 0: never moved, moments kept
  at 0. Same result, since the next phase starts a fresh optimizer.
* known difference: tf-models-official's LAMB (the project's one LAMB)
  applies Adam's bias correction with the global step count, the
  original's none. For trust-ratio (layer-adapted) tensors this only
  rescales the Adam term against the weight-decay term (the ratio
  normalizes the step's size); the variables excluded from adaptation
  (biases, normalization parameters) take steps of a different size
  after each moment reset (the original's first step after a reset is
  `(1 - beta_1) / sqrt(1 - beta_2) ~ 3.16` times the sign of the gradient).

A trainer computes the loss gates from the same counter as the optimizer:
`schedule.layer_gates(optimizer.iterations)` (a `LossScaleOptimizer`
forwards `iterations` to the one it wraps, and counts skipped steps too).
"""

import numbers
from typing import Dict, Mapping

import tensorflow as tf
from official.modeling.optimization import lamb

from mobilebert_tf import optimization

# The original's factors: the current block at 3x the background, earlier
# blocks at a tenth of that.
CURRENT_BLOCK_FACTOR = 3.0
EARLIER_BLOCK_FRACTION = 0.1



def _positive_int(name: str, value) -> int:
  if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
      or value < 1):
    raise ValueError(f"`{name}` must be a positive integer. Received: "
                     f"{name}={value!r}")
  return int(value)


class LayerWiseSchedule:
  """Stage, background rate, loss gates and block rates of a step.

  The methods take an integer step (a Python int or an integer tensor of
  any shape, e.g. `optimizer.iterations`), are plain TF ops (usable inside
  `tf.function`), and work elementwise over the step's shape; the per-block
  ones add a last axis of size `num_blocks`. See the module docstring for
  the exact semantics and their relation to the original.

  >>> schedule = LayerWiseSchedule(num_blocks=3, steps_per_stage=10)
  >>> int(schedule.stage(15)), float(schedule.background(10))
  (1, 0.0)
  >>> [round(r, 3) for r in schedule.block_rates(15).numpy().tolist()]
  [0.291, 2.912, 0.0]

  Args:
    num_blocks: int. Student blocks, one stage each.
    steps_per_stage: int. Steps per stage (`S`).

  Raises:
    ValueError: a size that is not a positive integer.
  """

  def __init__(self, num_blocks: int, steps_per_stage: int):
    self.num_blocks = _positive_int("num_blocks", num_blocks)
    self.steps_per_stage = _positive_int("steps_per_stage", steps_per_stage)

  @classmethod
  def from_total_steps(cls, num_blocks: int,
                       num_distill_steps: int) -> "LayerWiseSchedule":
    """The schedule of a layer-wise phase of `num_distill_steps` steps.

    `S = num_distill_steps // num_blocks`, as the original's
    `steps_per_phase`; the remainder steps stay in the last stage.

    Raises:
      ValueError: `num_distill_steps < num_blocks` (a stage would have no
        step), or a size that is not a positive integer.
    """
    num_blocks = _positive_int("num_blocks", num_blocks)
    num_distill_steps = _positive_int("num_distill_steps", num_distill_steps)
    if num_distill_steps < num_blocks:
      raise ValueError(
          "--num_distill_steps must be at least the student's number of "
          f"blocks ({num_blocks}): one stage of steps per block. Received: "
          f"num_distill_steps={num_distill_steps}")
    return cls(num_blocks, num_distill_steps // num_blocks)

  def __repr__(self):
    return (f"LayerWiseSchedule(num_blocks={self.num_blocks}, "
            f"steps_per_stage={self.steps_per_stage})")

  def stage(self, step) -> tf.Tensor:
    """int32 stage (current block) of `step`: `min(step // S, blocks - 1)`."""
    step = tf.cast(step, tf.int64)
    stage = tf.minimum(step // self.steps_per_stage, self.num_blocks - 1)
    return tf.cast(stage, tf.int32)

  def background(self, step) -> tf.Tensor:
    """float32 background rate of `step` (0 at each stage's first step)."""
    step = tf.cast(step, tf.int64)
    if self.steps_per_stage == 1:
      # The original's special case (its formula would be 0 at every step).
      return tf.ones_like(step, tf.float32)
    t = step - tf.cast(self.stage(step), tf.int64) * self.steps_per_stage
    # polynomial_decay clamps the step at its decay steps (past the last
    # stage, t >= S), which leaves 0.9.
    fraction = tf.cast(tf.minimum(t, self.steps_per_stage),
                       tf.float32) / self.steps_per_stage
    decay = 0.1 * tf.sqrt(1.0 - fraction) + 0.9
    warmup = 10.0 * fraction
    return tf.minimum(decay, warmup)

  def _stage_positions(self, step):
    """bool (current, earlier) `[..., num_blocks]`: block k vs the stage."""
    stage = self.stage(step)[..., tf.newaxis]
    blocks = tf.range(self.num_blocks, dtype=tf.int32)
    return tf.equal(blocks, stage), tf.less(blocks, stage)

  def layer_gates(self, step) -> tf.Tensor:
    """float32 `[..., num_blocks]`: the loss gates, 1 for the stage's block."""
    return tf.one_hot(self.stage(step), self.num_blocks, dtype=tf.float32)

  def block_rates(self, step) -> tf.Tensor:
    """float32 `[..., num_blocks]`: each block's learning-rate factor.

    `3 * background` for the stage's block, `0.3 * background` for the
    blocks before it, 0 for those after it.
    """
    current, earlier = self._stage_positions(step)
    piecewise = tf.where(current, 1.0,
                         tf.where(earlier, EARLIER_BLOCK_FRACTION, 0.0))
    background = self.background(step)[..., tf.newaxis]
    return CURRENT_BLOCK_FACTOR * background * piecewise


def block_variable_map(encoder) -> Dict[object, int]:
  """`{variable.ref(): block index}` for the encoder blocks' variables.

  By variable identity (`ref()`), not by name: block `i` is
  `encoder.transformer_layers[i]`. The keys, in block order, are the
  variables to train in the layer-wise phase:
  `[ref.deref() for ref in block_variable_map(encoder)]`.

  Args:
    encoder: a built `MobileBERTEncoder` (anything with
      `transformer_layers`, a list of Keras layers).

  Returns:
    A dict from `tf.Variable.ref()` to the int block index.

  Raises:
    ValueError: a block without trainable variables (an unbuilt encoder),
      or a variable shared by two blocks.
  """
  blocks = {}
  for index, block in enumerate(encoder.transformer_layers):
    variables = block.trainable_variables
    if not variables:
      raise ValueError(f"Block {index} ({block.name}) has no trainable "
                       "variables. Build the encoder (call it once) first.")
    for variable in variables:
      previous = blocks.setdefault(variable.ref(), index)
      if previous != index:
        raise ValueError(f"Variable {variable.name} is in blocks {previous} "
                         f"and {index}; each variable needs one block.")
  return blocks


class LayerWiseLAMB(lamb.LAMB):
  """tf-models-official's LAMB with the layer-wise phase's per-block rates.

  At step `s = iterations` (0-based, before the increment), a variable of
  block `k` takes LAMB's step times `schedule.block_rates(s)[k]` (the
  learning rate is scaled, after the trust ratio, so LAMB's invariance to
  the gradient's scale does not undo it), and if that factor is 0 its
  moments are zeroed after the step (the original's gate). Everything else
  is the parent's: moments, bias correction, weight decay and trust ratio
  for the variables `exclude_from_weight_decay` does not match.

  Every variable given to `apply_gradients` (or to
  `_compat.create_optimizer_slots`) must be in `block_of_variable`: in the
  layer-wise phase only the blocks train (see the module docstring).

  Works in `tf.function`, under `tf.distribute` strategies and wrapped in a
  `tf_keras.mixed_precision.LossScaleOptimizer`. Checkpoint it with
  `tf.train.Checkpoint` (its step and slots); `get_config` gives LAMB's
  arguments only, as the variable map is not configuration.

  Args:
    schedule: the `LayerWiseSchedule`.
    block_of_variable: mapping `variable.ref() -> block index`
      (`block_variable_map(encoder)`).
    learning_rate: float or schedule. The base rate (a constant in the
      layer-wise phase). Defaults to 1e-3.
    name: str. Defaults to "LayerWiseLAMB".
    **kwargs: `lamb.LAMB` arguments (`weight_decay_rate`,
      `exclude_from_weight_decay`, `beta_1`, ...) and the legacy
      optimizers' (`global_clipnorm`).

  Raises:
    TypeError: `schedule` is not a `LayerWiseSchedule`, or a key of
      `block_of_variable` is not a variable reference.
    ValueError: a block index outside `[0, schedule.num_blocks)`.
  """

  def __init__(self, schedule: LayerWiseSchedule,
               block_of_variable: Mapping[object, int],
               learning_rate=1e-3, name: str = "LayerWiseLAMB", **kwargs):
    if not isinstance(schedule, LayerWiseSchedule):
      raise TypeError("`schedule` must be a LayerWiseSchedule. Received: "
                      f"{type(schedule).__name__}")
    blocks = {}
    for key, block in dict(block_of_variable).items():
      if not hasattr(key, "deref"):
        raise TypeError(
            "`block_of_variable` keys must be variable references "
            f"(`variable.ref()`, see block_variable_map). Received a key of "
            f"type {type(key).__name__}")
      if (isinstance(block, bool) or not isinstance(block, numbers.Integral)
          or not 0 <= block < schedule.num_blocks):
        raise ValueError(
            f"`block_of_variable` maps {key.deref().name} to block "
            f"{block!r}; blocks are integers in [0, {schedule.num_blocks}) "
            "(the schedule's num_blocks).")
      blocks[key] = int(block)
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self._schedule = schedule
    self._block_of_variable = blocks
    # Block by the variable's "m" slot: `get_slot` finds it from the
    # variable and also from a strategy's per-replica copy, which is what
    # the update functions receive.
    self._block_of_slot = {}

  @property
  def schedule(self) -> LayerWiseSchedule:
    return self._schedule

  def _create_slots(self, var_list):
    unknown = [v.name for v in var_list
               if v.ref() not in self._block_of_variable]
    if unknown:
      raise ValueError(
          f"{len(unknown)} variables are not in `block_of_variable`: "
          f"{', '.join(unknown)}. In the layer-wise phase pass only the "
          "encoder blocks' variables (block_variable_map(encoder)).")
    super()._create_slots(var_list)
    for variable in var_list:
      self._block_of_slot[self.get_slot(variable, "m").ref()] = (
          self._block_of_variable[variable.ref()])

  def _prepare_local(self, var_device, var_dtype, apply_state):
    super()._prepare_local(var_device, var_dtype, apply_state)
    apply_state[(var_device, var_dtype)]["block_rates"] = tf.cast(
        self._schedule.block_rates(self.iterations), var_dtype)

  def _block_coefficients(self, var, apply_state):
    """({(device, dtype): coefficients with the block's lr_t}, the rate)."""
    key = (var.device, var.dtype.base_dtype)
    coefficients = ((apply_state or {}).get(key)
                    or self._fallback_apply_state(*key))
    block = self._block_of_slot.get(self.get_slot(var, "m").ref())
    if block is None:  # slots made without our `_create_slots`
      raise ValueError(f"Variable {var.name} is not in `block_of_variable`.")
    rate = coefficients["block_rates"][block]
    return {key: dict(coefficients, lr_t=coefficients["lr_t"] * rate)}, rate

  def _zero_frozen_moments(self, var, rate, update):
    """After `update`, zeroes `var`'s moments if its rate is 0."""
    resets = []
    with tf.control_dependencies([update]):
      for name in ("m", "v"):
        slot = self.get_slot(var, name)
        keep = tf.cast(rate > 0, slot.dtype)
        resets.append(slot.assign(slot * keep, use_locking=self._use_locking))
    return tf.group(update, *resets)

  def _resource_apply_dense(self, grad, var, apply_state=None):
    block_state, rate = self._block_coefficients(var, apply_state)
    update = super()._resource_apply_dense(grad, var, block_state)
    return self._zero_frozen_moments(var, rate, update)

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    block_state, rate = self._block_coefficients(var, apply_state)
    update = super()._resource_apply_sparse(grad, var, indices, block_state)
    return self._zero_frozen_moments(var, rate, update)


def create_layer_wise_optimizer(learning_rate: float,
                                schedule: LayerWiseSchedule,
                                block_of_variable: Mapping[object, int],
                                weight_decay_rate: float = 0.01
                                ) -> LayerWiseLAMB:
  """The layer-wise phase's optimizer, with the original's settings.

  LAMB at a constant base rate (no warm-up, no decay), beta 0.9/0.999,
  epsilon 1e-6, gradients clipped at global norm 1.0, weight decay (and
  the trust ratio) for the variables `optimization.uses_weight_decay`
  selects; times the schedule's per-block rates.

  Args:
    learning_rate: float. The base learning rate.
    schedule: the `LayerWiseSchedule`
      (`LayerWiseSchedule.from_total_steps(blocks, num_distill_steps)`).
    block_of_variable: `block_variable_map(encoder)`.
    weight_decay_rate: float. Defaults to 0.01.

  Returns:
    A `LayerWiseLAMB`.

  Raises:
    ValueError: a non-positive `learning_rate`, a negative
      `weight_decay_rate`, or a bad `block_of_variable`.
    TypeError: see `LayerWiseLAMB`.
  """
  if (isinstance(learning_rate, bool)
      or not isinstance(learning_rate, numbers.Real) or learning_rate <= 0):
    raise ValueError("`learning_rate` must be a positive number. Received: "
                     f"learning_rate={learning_rate!r}")
  if (isinstance(weight_decay_rate, bool)
      or not isinstance(weight_decay_rate, numbers.Real)
      or weight_decay_rate < 0):
    raise ValueError("`weight_decay_rate` must be a number >= 0. Received: "
                     f"weight_decay_rate={weight_decay_rate!r}")
  return LayerWiseLAMB(
      schedule, block_of_variable, learning_rate=float(learning_rate),
      weight_decay_rate=float(weight_decay_rate), beta_1=0.9, beta_2=0.999,
      epsilon=1e-6,
      exclude_from_weight_decay=list(optimization.WEIGHT_DECAY_EXCLUDE),
      global_clipnorm=1.0)
