"""Optimizers and learning-rate schedules for every trainer of the project.

One path for all of them: tf-models-official's `official.modeling.optimization`
(its `OptimizerFactory`, LAMB and AdamWeightDecay, polynomial decay, linear
warm-up), configured here, plus the one rule for which variables get weight
decay (`uses_weight_decay`).

The original MobileBERT (google-research `mobilebert/optimization.py`) trains
with LAMB (pretraining, distillation) or AdamW (fine-tuning), excluding from
weight decay every variable whose name contains "LayerNorm", "layer_norm" or
"bias": biases, LayerNorm and `FakeLayerNorm` (our `NoNorm`) scales and
offsets. Kernels, embedding tables and `extra_output_weights` are decayed.
Our variables have other names than the TF1 ones, so the rule is stated on
ours: a variable ending in `bias`, `gamma` or `beta` is not decayed.
"""

import re
from typing import Optional

import tf_keras
from official.modeling import optimization as tfm_optimization

OPTIMIZERS = ("lamb", "adamw")

# Regular expressions searched in variable names (as tf-models-official's
# optimizers do): biases and the scale/offset of LayerNorm and NoNorm.
# MirroredStrategy names replica i's copy of a variable "<name>/replica_<i>"
# (i >= 1), and the optimizers match that copy's name in their per-replica
# updates: without the suffix here, replicas 1.. would decay biases.
WEIGHT_DECAY_EXCLUDE = tuple(rf"(^|/){name}(/replica_\d+)?(:\d+)?$"
                             for name in ("bias", "gamma", "beta"))


def uses_weight_decay(variable) -> bool:
  """Whether a variable (or a variable name) is weight-decayed.

  Kernels and embeddings are; biases, LayerNorm and NoNorm parameters are not.
  """
  name = variable if isinstance(variable, str) else variable.name
  return not any(re.search(p, name) for p in WEIGHT_DECAY_EXCLUDE)


def create_optimizer(optimizer_type: str,
                     learning_rate: float,
                     num_train_steps: int,
                     num_warmup_steps: int = 0,
                     weight_decay_rate: float = 0.01,
                     end_learning_rate: float = 0.0,
                     power: float = 1.0,
                     beta_1: float = 0.9,
                     beta_2: float = 0.999,
                     epsilon: float = 1e-6,
                     global_clipnorm: Optional[float] = 1.0):
  """LAMB or AdamW with linear warm-up and polynomial (default linear) decay.

  The learning rate rises linearly from 0 to `learning_rate` over the first
  `num_warmup_steps`, then decays polynomially to `end_learning_rate` at
  `num_train_steps`. (The original decays over all `num_train_steps` from
  step 0 and replaces the first steps by the warm-up ramp, so right after
  the warm-up it drops from `learning_rate` to `learning_rate * (1 - W/T)`;
  here the schedule is continuous and reaches its peak.)

  Args:
    optimizer_type: str. "lamb" (the original's choice for pretraining and
      distillation) or "adamw".
    learning_rate: float. Peak learning rate.
    num_train_steps: int. Steps of the whole schedule.
    num_warmup_steps: int. Linear warm-up steps. Defaults to 0.
    weight_decay_rate: float. Decoupled weight decay, applied to the
      variables `uses_weight_decay` selects. Defaults to 0.01.
    end_learning_rate: float. Defaults to 0.
    power: float. Polynomial decay power. Defaults to 1 (linear).
    beta_1, beta_2, epsilon: Adam moments' parameters. Defaults 0.9, 0.999,
      1e-6 (the original's).
    global_clipnorm: float or None. Clip gradients to this global norm.
      Defaults to 1.0 (the original's).

  Returns:
    A `tf_keras` (legacy) optimizer.

  Raises:
    ValueError: an unknown `optimizer_type` or an inconsistent schedule.
  """
  if optimizer_type not in OPTIMIZERS:
    raise ValueError(f"`optimizer_type` must be one of {OPTIMIZERS}. "
                     f"Received: {optimizer_type!r}")
  if not num_train_steps or num_train_steps < 1:
    raise ValueError("`num_train_steps` must be a positive integer. "
                     f"Received: {num_train_steps!r}")
  if num_warmup_steps < 0 or num_warmup_steps > num_train_steps:
    raise ValueError(
        f"`num_warmup_steps` must be in [0, num_train_steps "
        f"({num_train_steps})]. Received: {num_warmup_steps!r}")
  optimizer = {"weight_decay_rate": weight_decay_rate,
               "exclude_from_weight_decay": list(WEIGHT_DECAY_EXCLUDE),
               "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon,
               "global_clipnorm": global_clipnorm}
  if optimizer_type == "adamw":
    # Its own clipping (default 1.0) would clip a second time, whatever
    # `global_clipnorm` says.
    optimizer["gradient_clip_norm"] = 0.0
  config = {
      "optimizer": {"type": optimizer_type, optimizer_type: optimizer},
      "learning_rate": {
          "type": "polynomial",
          "polynomial": {"initial_learning_rate": learning_rate,
                         # The decay starts after the warm-up.
                         "offset": num_warmup_steps,
                         "decay_steps": max(num_train_steps -
                                            num_warmup_steps, 1),
                         "end_learning_rate": end_learning_rate,
                         "power": power}},
  }
  if num_warmup_steps:
    config["warmup"] = {"type": "linear",
                        "linear": {"warmup_steps": num_warmup_steps,
                                   "warmup_learning_rate": 0.0}}
  factory = tfm_optimization.OptimizerFactory(
      tfm_optimization.OptimizationConfig(config))
  return factory.build_optimizer(factory.build_learning_rate())


def learning_rate_at(optimizer: tf_keras.optimizers.Optimizer, step) -> float:
  """The learning rate the optimizer's schedule gives at `step`."""
  schedule = optimizer.learning_rate
  if callable(schedule):
    return float(schedule(step))
  return float(tf_keras.backend.get_value(schedule))
