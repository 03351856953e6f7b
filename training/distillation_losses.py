"""The distillation losses: IB-BERT teacher -> MobileBERT student.

Pure functions of tensors, with the formulas of google-research
`mobilebert/run_pretraining.py` (`model_fn`), the code that trained the
published MobileBERT:

* feature-map transfer: the mean squared error between the teacher's and the
  student's block outputs, each first normalized over the hidden axis by a
  parameter-free layer norm (the original's non-trainable
  `contrib_layers.layer_norm(begin_norm_axis=-1)`: scale 1, offset 0,
  `nn.batch_normalization` with `variance_epsilon=1e-12` in float32, 1e-3
  in float16; TF 1.15's `tensorflow/contrib/layers/python/layers/layers.py`);
* attention transfer: the cross-entropy of the student's attention
  distribution against the teacher's, per query;
* mean and variance transfer: the squared difference of the per-position
  means over the hidden axis, and the absolute difference of the variances;
* soft masked LM: the masked-LM cross-entropy against a mix of the one-hot
  label and the teacher's softmax.

The attention maps compared are the masked PRE-softmax scores (our encoder's
`attention_logits`, the original's `get_all_attention_maps()`), and the
losses apply the softmax themselves. tf-models-official's port
(`official/projects/mobilebert/distillation.py`) feeds the Keras attention
layers' `return_attention_scores` output, which is already the softmax
PROBABILITIES, into the same softmax: a softmax of values in [0, 1] is
close to uniform (each weight within a factor e of 1/seq), so its target
hardly depends on what the teacher attends to, padded keys included, and
the loss hardly teaches anything. (Its feature-map layer norm also uses
Keras' default epsilon 1e-3, not 1e-12.)

Block lists follow our encoder: `encoder_outputs[i]` is the output of block
i, the original's `get_all_encoder_layers()[i + 1]` (index 0 there is the
embedding output, which the original skips), and `attention_logits[i]` is
the original's `get_all_attention_maps()[i]`.

Replicas: like `training.pretraining_losses`, each per-term function
divides its sum by the GLOBAL batch (`global_batch_size`) and the composites
all-reduce the batch size and weight sums over the replicas, so that the
SUM over replicas of the losses and of their gradients is exactly one
replica holding the whole batch. With the defaults (no strategy) each
equals the original's mean formula.

Example (the layer-wise transfer stage of progressive knowledge transfer,
student block `stage` learning from teacher block `stage`):

>>> losses = layer_transfer_losses(
...     teacher_outputs, student_outputs, teacher_layers=(0, 1, 2, 3),
...     layer_gates=tf.one_hot(stage, 4), factors=TransferFactors())
>>> gradients = tape.gradient(losses["loss"], student.trainable_variables)
"""

import dataclasses
import numbers
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from training import pretraining_losses

# The original's layer norm epsilon (contrib `layer_norm`, float32 inputs;
# we compute in float32 whatever the inputs' dtype).
LAYER_NORM_EPSILON = 1e-12


# === Helpers ===


def _check_pair(teacher, student, rank, teacher_name, student_name,
                leading_only=False):
  """Raises ValueError unless both have rank `rank` and one static shape.

  With `leading_only` only the dimensions before the last must agree.
  """
  for name, tensor in ((teacher_name, teacher), (student_name, student)):
    if tensor.shape.rank != rank:
      raise ValueError(f"`{name}` must have rank {rank}. Received shape "
                       f"{tensor.shape}.")
  compared = ((teacher.shape[:-1], student.shape[:-1]) if leading_only
              else (teacher.shape, student.shape))
  if not compared[0].is_compatible_with(compared[1]):
    what = "leading dimensions" if leading_only else "shape"
    raise ValueError(
        f"`{student_name}` must have the {what} of `{teacher_name}`: "
        f"{teacher.shape} vs {student.shape}. Pass tensors of the same "
        "batch and sequence (and for logits and feature maps the same "
        "width).")


def _float32(tensor):
  return tf.cast(tensor, tf.float32)


def _divisor(tensor, global_batch_size):
  """Global batch size times the elements per example of `tensor`, float32."""
  shape = tf.shape(tensor)
  if global_batch_size is None:
    global_batch_size = shape[0]
  per_example = tf.reduce_prod(shape[1:])
  return (tf.cast(global_batch_size, tf.float32)
          * tf.cast(per_example, tf.float32))


def _moments(hidden):
  """Mean and (biased) variance over the last axis, keepdims, float32."""
  mean = tf.reduce_mean(hidden, axis=-1, keepdims=True)
  variance = tf.reduce_mean(tf.math.squared_difference(hidden, mean),
                            axis=-1, keepdims=True)
  return mean, variance


def _layer_norm(hidden):
  """The original's parameter-free layer norm over the hidden axis."""
  mean, variance = _moments(hidden)
  return (hidden - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON)


def _soft_cross_entropy(teacher_logits, student_logits):
  """`-sum(softmax(teacher) * log_softmax(student))` over the last axis.

  The fused op computes the same sum without materializing the student's
  log-probabilities; the teacher's side is a constant (stop_gradient).
  """
  targets = tf.stop_gradient(tf.nn.softmax(teacher_logits, axis=-1))
  return tf.nn.softmax_cross_entropy_with_logits(labels=targets,
                                                 logits=student_logits)


def _static_ratio(ground_truth_ratio):
  """The ratio as a Python float when known while tracing, else None.

  Raises:
    ValueError: a known ratio outside [0, 1].
  """
  value = tf.get_static_value(ground_truth_ratio)
  if value is None:
    return None
  value = float(np.asarray(value))
  if not 0.0 <= value <= 1.0:
    raise ValueError("`ground_truth_ratio` must be in [0, 1] (1.0: ground "
                     f"truth only). Received: {value}")
  return value


def _default_replica_context(replica_context):
  if replica_context is not None:
    return replica_context
  return pretraining_losses.in_strategy_replica_context()


# === Per-term losses ===


def feature_map_transfer_loss(teacher_hidden, student_hidden,
                              global_batch_size=None) -> tf.Tensor:
  """MSE of the layer-normalized block outputs, as the original's.

  `tf.losses.mean_squared_error(LN(teacher), LN(student))` with `LN` the
  parameter-free layer norm over the hidden axis (epsilon 1e-12): the mean
  over every element, or the sum over this batch divided by
  `global_batch_size * seq * hidden`.

  Args:
    teacher_hidden: float `[batch, seq, hidden]`. A teacher block's output;
      a constant (stop_gradient).
    student_hidden: float `[batch, seq, hidden]`. The matching student
      block's output.
    global_batch_size: number or scalar tensor, or None. The divisor's batch
      count. Defaults to this batch's size; under a strategy pass the GLOBAL
      batch size (`layer_transfer_losses` does).

  Returns:
    float32 scalar.

  Raises:
    ValueError: the two are not rank 3 of one shape.
  """
  teacher_hidden = tf.convert_to_tensor(teacher_hidden)
  student_hidden = tf.convert_to_tensor(student_hidden)
  _check_pair(teacher_hidden, student_hidden, 3, "teacher_hidden",
              "student_hidden")
  teacher = tf.stop_gradient(_layer_norm(_float32(teacher_hidden)))
  student = _layer_norm(_float32(student_hidden))
  total = tf.reduce_sum(tf.math.squared_difference(teacher, student))
  return total / _divisor(student, global_batch_size)


def attention_transfer_loss(teacher_logits, student_logits,
                            global_batch_size=None) -> tf.Tensor:
  """Cross-entropy of the student's attention against the teacher's.

  The original's: the mean over batch, heads and queries of
  `sum over keys of -softmax(teacher) * log_softmax(student)`. It calls this
  the KL divergence; it differs from `KL(teacher || student)` by the
  teacher's entropy, a constant for the student, so the gradients are the
  KL's. Every query row counts, padded queries included (as the original).

  Args:
    teacher_logits: float `[batch, heads, queries, keys]`. A teacher block's
      masked PRE-softmax attention scores (`attention_logits`, not the
      probabilities); a constant (stop_gradient).
    student_logits: float `[batch, heads, queries, keys]`. The matching
      student block's masked pre-softmax scores.
    global_batch_size: number or scalar tensor, or None. The divisor's batch
      count (times heads and queries). Defaults to this batch's size.

  Returns:
    float32 scalar.

  Raises:
    ValueError: the two are not rank 4 of one shape.
  """
  teacher_logits = tf.convert_to_tensor(teacher_logits)
  student_logits = tf.convert_to_tensor(student_logits)
  _check_pair(teacher_logits, student_logits, 4, "teacher_logits",
              "student_logits")
  per_query = _soft_cross_entropy(_float32(teacher_logits),
                                  _float32(student_logits))  # [b, h, q]
  return tf.reduce_sum(per_query) / _divisor(per_query, global_batch_size)


def mean_variance_transfer_losses(
    teacher_hidden, student_hidden,
    global_batch_size=None) -> Tuple[tf.Tensor, tf.Tensor]:
  """The mean and variance transfer losses of one block, as the original's.

  Per position, mean and (biased) variance over the hidden axis;
  `mean_loss = mean((mu_t - mu_s)^2)`, `variance_loss = mean(|var_t -
  var_s|)`, means over batch and sequence. The original computes the
  teacher's statistics from `teacher_hiddens`, the LIST of all its layers
  (the loop variable is `teacher_hidden`): an apparent typo that compares
  every student block with the statistics of the whole teacher stack. This
  function uses the intended per-block statistics.

  Args:
    teacher_hidden: float `[batch, seq, teacher_hidden]`. A teacher block's
      output; a constant (stop_gradient).
    student_hidden: float `[batch, seq, student_hidden]`. The matching
      student block's output (the widths may differ).
    global_batch_size: number or scalar tensor, or None. The divisor's batch
      count (times seq). Defaults to this batch's size.

  Returns:
    `(mean_loss, variance_loss)`, float32 scalars, before the original's
    factors beta and gamma.

  Raises:
    ValueError: the two are not rank 3 or differ in batch or sequence.
  """
  teacher_hidden = tf.convert_to_tensor(teacher_hidden)
  student_hidden = tf.convert_to_tensor(student_hidden)
  _check_pair(teacher_hidden, student_hidden, 3, "teacher_hidden",
              "student_hidden", leading_only=True)
  teacher_mean, teacher_variance = [
      tf.stop_gradient(t) for t in _moments(_float32(teacher_hidden))]
  student_mean, student_variance = _moments(_float32(student_hidden))
  divisor = _divisor(student_mean, global_batch_size)  # [b, s, 1]
  mean_loss = tf.reduce_sum(
      tf.math.squared_difference(teacher_mean, student_mean)) / divisor
  variance_loss = tf.reduce_sum(
      tf.abs(teacher_variance - student_variance)) / divisor
  return mean_loss, variance_loss


def soft_masked_lm_loss(masked_lm_ids, masked_lm_weights, student_logits,
                        teacher_logits, ground_truth_ratio,
                        weight_sum=None) -> tf.Tensor:
  """Masked-LM cross-entropy against ground truth mixed with the teacher.

  The original's: labels `ratio * onehot(ids) + (1 - ratio) *
  softmax(teacher_logits)` (a constant: stop_gradient), loss
  `sum(w * -sum(labels * log_softmax(student_logits))) / (weight_sum +
  1e-5)`. The labels are linear, so it is computed as `ratio * masked_lm_loss
  + (1 - ratio) * soft part`, without the `[batch, predictions, vocab]`
  one-hot; with ratio 1.0 it IS `pretraining_losses.masked_lm_loss`.

  Temperature: the original multiplies the TEACHER's sequence output by
  `distill_temperature` before its masked-LM head (so the head's transform
  and layer norm see the scaled output, and the student's logits are not
  scaled, nor is the loss multiplied by T^2). `teacher_logits` must already
  include it: the caller runs the teacher's head on `T * sequence_output`.

  Args:
    masked_lm_ids: int `[batch, num_predictions]`. The original ids.
    masked_lm_weights: float `[batch, num_predictions]`. 1.0 real, 0.0 pad.
    student_logits: float `[batch, num_predictions, vocab]`. The student's
      `mlm_logits`.
    teacher_logits: float `[batch, num_predictions, vocab]` or None. The
      teacher's `mlm_logits` (temperature included); a constant. None only
      with ratio 1.0.
    ground_truth_ratio: float in [0, 1] or scalar tensor. The weight of the
      one-hot labels (the original's `distill_ground_truth_ratio`).
    weight_sum: float scalar or None. The denominator's sum of weights.
      Defaults to this batch's; under a strategy pass the global one.

  Returns:
    float32 scalar.

  Raises:
    ValueError: the ratio is outside [0, 1]; teacher logits are missing with
      a ratio below 1, or their shape differs from the student's.
  """
  ratio = _static_ratio(ground_truth_ratio)
  if ratio == 1.0:
    return pretraining_losses.masked_lm_loss(
        masked_lm_ids, masked_lm_weights, student_logits, weight_sum)
  if teacher_logits is None:
    raise ValueError(
        "`teacher_logits` is None, so `ground_truth_ratio` must be 1.0. "
        f"Received: {ground_truth_ratio}. Pass the teacher's mlm_logits or "
        "ratio 1.0.")
  teacher_logits = tf.convert_to_tensor(teacher_logits)
  student_logits = tf.convert_to_tensor(student_logits)
  _check_pair(teacher_logits, student_logits, 3, "teacher_logits",
              "student_logits")
  weights = _float32(masked_lm_weights)
  if weight_sum is None:
    weight_sum = tf.reduce_sum(weights)
  denominator = (tf.cast(weight_sum, tf.float32)
                 + pretraining_losses.MASKED_LM_EPSILON)
  per_position = _soft_cross_entropy(_float32(teacher_logits),
                                     _float32(student_logits))
  soft = tf.reduce_sum(weights * per_position) / denominator
  if ratio == 0.0:
    return soft
  ratio = tf.cast(ground_truth_ratio, tf.float32)
  hard = pretraining_losses.masked_lm_loss(
      masked_lm_ids, weights, student_logits, weight_sum)
  return ratio * hard + (1.0 - ratio) * soft


# === Composites ===


@dataclasses.dataclass(frozen=True)
class TransferFactors:
  """The weights of the layer-wise transfer losses.

  The defaults are the original's recommended values (README of
  google-research `mobilebert`; tf-models-official's
  `LayerWiseDistillConfig`); the flags `--attention_distill_factor`,
  `--hidden_distill_factor`, `--beta_distill_factor` and
  `--gamma_distill_factor` map onto them. A factor of 0 turns its term off
  (and the mean/variance pair is computed only when both beta and gamma are
  non-zero, as the original).

  Args:
    attention: float. Attention transfer. Defaults to 1.0.
    hidden: float. Feature-map transfer. Defaults to 100.0.
    beta: float. Mean transfer. Defaults to 5000.0.
    gamma: float. Variance transfer. Defaults to 5.0.

  Raises:
    ValueError: a factor is not a finite non-negative number.
  """

  attention: float = 1.0
  hidden: float = 100.0
  beta: float = 5000.0
  gamma: float = 5.0

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if (isinstance(value, bool) or not isinstance(value, numbers.Real)
          or not np.isfinite(value) or value < 0):
        raise ValueError(
            f"`{field.name}` must be a finite number >= 0 (0 turns the term "
            f"off). Received: {field.name}={value!r}")

  @property
  def uses_moments(self) -> bool:
    """Whether the mean/variance pair is computed (beta and gamma != 0)."""
    return self.beta != 0 and self.gamma != 0


def _check_teacher_layers(teacher_layers, num_student, num_teacher):
  """Returns `teacher_layers` as a tuple of ints, or raises ValueError."""
  try:
    layers = tuple(teacher_layers)
  except TypeError:
    raise ValueError(
        "`teacher_layers` must be a sequence of teacher block indices, one "
        f"per student block. Received: {teacher_layers!r}") from None
  if len(layers) != num_student:
    raise ValueError(
        f"`teacher_layers` must have one teacher block index per student "
        f"block ({num_student}). Received {len(layers)}: {layers}. Pass e.g. "
        f"{tuple(range(num_student))} for a teacher of the same depth.")
  for index in layers:
    if (isinstance(index, bool) or not isinstance(index, numbers.Integral)
        or not 0 <= index < num_teacher):
      raise ValueError(
          f"`teacher_layers` must hold teacher block indices in [0, "
          f"{num_teacher}) (the teacher has {num_teacher} blocks). "
          f"Received: {layers}")
  return tuple(int(i) for i in layers)


def _blocks(outputs, key, argument, needed_for):
  """`outputs[key]` as a list, or ValueError naming the fix."""
  if key not in outputs:
    fix = (" Build the encoder with return_attention_logits=True."
           if key == "attention_logits" else "")
    raise ValueError(f"`{argument}` has no {key!r}, needed for "
                     f"{needed_for}.{fix} Received keys: {sorted(outputs)}")
  return list(outputs[key])


def layer_transfer_losses(teacher_outputs: Mapping[str, Sequence[tf.Tensor]],
                          student_outputs: Mapping[str, Sequence[tf.Tensor]],
                          teacher_layers: Sequence[int],
                          layer_gates,
                          factors: TransferFactors = TransferFactors(),
                          replica_context=None) -> Dict[str, tf.Tensor]:
  """The layer-wise knowledge transfer losses of one replica's batch share.

  As the original's, for each term: `factor * sum_i gate_i * term(teacher
  block teacher_layers[i], student block i) / num_student_blocks`. The
  division by the number of blocks is the original's, even in progressive
  transfer where one gate is on (it only rescales the learning rate, and
  keeping it keeps the original's factors and learning rates valid).

  Blocks whose gate is known to be 0 while tracing (a constant, a NumPy
  array, an eager tensor) are not computed; with a gate computed in the
  graph (e.g. `tf.one_hot` of a stage variable) every block is computed
  and multiplied by its gate.

  Args:
    teacher_outputs: the teacher encoder's outputs: `encoder_outputs` (one
      `[batch, seq, hidden]` per block) and, when `factors.attention != 0`,
      `attention_logits` (one `[batch, heads, seq, seq]` per block; build
      the encoder with `return_attention_logits=True`). Constants
      (stop_gradient).
    student_outputs: the student encoder's outputs, the same keys.
    teacher_layers: sequence of ints, one per student block: student block
      i learns from teacher block `teacher_layers[i]` (e.g. `(1, 3)` for a
      2-block student of a 4-block teacher; `range(n)` for equal depths).
    layer_gates: float `[num_student_blocks]` (tensor, array or list).
      1.0 for an active block, 0.0 for an inactive one: the one-hot of the
      current stage in progressive transfer, all ones in joint transfer.
    factors: `TransferFactors`. Defaults to the original's recommended ones.
    replica_context: a `tf.distribute.ReplicaContext` or None. The batch size
      is all-reduced (SUM) over its replicas. Defaults to the current
      replica context inside a strategy's `run`; outside a strategy the
      batch is the whole batch.

  Returns:
    dict of float32 scalars: `feature_map_transfer_loss`,
    `attention_transfer_loss`, `mean_transfer_loss`,
    `variance_transfer_loss` (each 0.0 when its factor is 0) and `loss`,
    their sum. In a strategy each is this replica's share: SUM them over
    the replicas for the global value.

  Raises:
    ValueError: a bad `teacher_layers`, `layer_gates` of the wrong length,
      a missing output key, or block shapes that differ.
  """
  student_hidden = _blocks(student_outputs, "encoder_outputs",
                           "student_outputs", "layer transfer")
  teacher_hidden = _blocks(teacher_outputs, "encoder_outputs",
                           "teacher_outputs", "layer transfer")
  num_student = len(student_hidden)
  layers = _check_teacher_layers(teacher_layers, num_student,
                                 len(teacher_hidden))
  gates = tf.cast(layer_gates, tf.float32)
  if not gates.shape.is_compatible_with([num_student]):
    raise ValueError(
        f"`layer_gates` must have shape [{num_student}] (one gate per "
        f"student block). Received shape {gates.shape}.")
  static_gates = tf.get_static_value(gates)
  active = [i for i in range(num_student)
            if static_gates is None or static_gates[i] != 0]

  result = dict(feature_map_transfer_loss=tf.constant(0.0),
                attention_transfer_loss=tf.constant(0.0),
                mean_transfer_loss=tf.constant(0.0),
                variance_transfer_loss=tf.constant(0.0))
  use_hidden = factors.hidden != 0 or factors.uses_moments
  use_attention = factors.attention != 0
  if use_attention:
    student_attention = _blocks(student_outputs, "attention_logits",
                                "student_outputs", "attention transfer")
    teacher_attention = _blocks(teacher_outputs, "attention_logits",
                                "teacher_outputs", "attention transfer")
  for i in active:
    t = layers[i]
    if use_hidden:
      _check_pair(tf.convert_to_tensor(teacher_hidden[t]),
                  tf.convert_to_tensor(student_hidden[i]), 3,
                  f"teacher_outputs['encoder_outputs'][{t}]",
                  f"student_outputs['encoder_outputs'][{i}]")
    if use_attention:
      _check_pair(tf.convert_to_tensor(teacher_attention[t]),
                  tf.convert_to_tensor(student_attention[i]), 4,
                  f"teacher_outputs['attention_logits'][{t}]",
                  f"student_outputs['attention_logits'][{i}]")
  if not active or not (use_hidden or use_attention):
    result["loss"] = tf.add_n(list(result.values()))
    return result

  replica_context = _default_replica_context(replica_context)
  batch_size = tf.cast(tf.shape(student_hidden[0])[0], tf.float32)
  (batch_size,) = pretraining_losses.all_reduce_sums([batch_size], replica_context)

  def gated_mean(terms, factor):
    # The original's `factor * sum_i gate_i * term_i / num_layers`.
    total = tf.add_n([gates[i] * term for i, term in terms])
    return factor * total / num_student

  if factors.hidden != 0:
    result["feature_map_transfer_loss"] = gated_mean(
        [(i, feature_map_transfer_loss(teacher_hidden[layers[i]],
                                       student_hidden[i], batch_size))
         for i in active], factors.hidden)
  if factors.uses_moments:
    pairs = [(i, mean_variance_transfer_losses(
        teacher_hidden[layers[i]], student_hidden[i], batch_size))
             for i in active]
    result["mean_transfer_loss"] = gated_mean(
        [(i, pair[0]) for i, pair in pairs], factors.beta)
    result["variance_transfer_loss"] = gated_mean(
        [(i, pair[1]) for i, pair in pairs], factors.gamma)
  if use_attention:
    result["attention_transfer_loss"] = gated_mean(
        [(i, attention_transfer_loss(teacher_attention[layers[i]],
                                     student_attention[i], batch_size))
         for i in active], factors.attention)
  result["loss"] = tf.add_n(list(result.values()))
  return result


def pretraining_distillation_loss(
    features: Mapping[str, tf.Tensor],
    student_outputs: Mapping[str, tf.Tensor],
    teacher_mlm_logits: Optional[tf.Tensor],
    ground_truth_ratio,
    replica_context=None) -> Dict[str, tf.Tensor]:
  """Soft-target masked LM plus next-sentence loss of one replica's share.

  The original's pretraining distillation: the masked-LM loss against
  `ratio * onehot + (1 - ratio) * softmax(teacher)` (`soft_masked_lm_loss`)
  plus the ground-truth next-sentence loss. With `ground_truth_ratio` 1.0 it
  is `pretraining_losses.pretraining_loss`, the ordinary pretraining loss.

  Args:
    features: dict with `masked_lm_ids`, `masked_lm_weights` `[batch,
      num_predictions]` and, when `student_outputs` has `next_sentence`,
      `next_sentence_labels` `[batch]` or `[batch, 1]`.
    student_outputs: the student pretrainer's outputs: `mlm_logits`
      `[batch, num_predictions, vocab]` and optionally `next_sentence`
      `[batch, 2]`.
    teacher_mlm_logits: float `[batch, num_predictions, vocab]` or None. The
      teacher's `mlm_logits` computed from `distill_temperature * teacher
      sequence output` (see `soft_masked_lm_loss`); a constant. None only
      with ratio 1.0.
    ground_truth_ratio: float in [0, 1] or scalar tensor. The original's
      `distill_ground_truth_ratio`.
    replica_context: a `tf.distribute.ReplicaContext` or None. The weight
      sum and the batch size are all-reduced (SUM) over its replicas.
      Defaults to the current replica context inside a strategy's `run`.

  Returns:
    dict of float32 scalars: `masked_lm_loss`, `next_sentence_loss` (only
    when `student_outputs` has `next_sentence`) and `loss`, their sum. In a
    strategy each is this replica's share: SUM over the replicas.

  Raises:
    ValueError: the ratio is outside [0, 1]; teacher logits are missing with
      a ratio below 1, or their shape differs from the student's.
  """
  ratio = _static_ratio(ground_truth_ratio)
  if ratio == 1.0:
    return pretraining_losses.pretraining_loss(features, student_outputs,
                                               replica_context)
  if teacher_mlm_logits is None:
    raise ValueError(
        "`teacher_mlm_logits` is None, so `ground_truth_ratio` must be 1.0. "
        f"Received: {ground_truth_ratio}. Pass the teacher's mlm_logits or "
        "ratio 1.0.")
  replica_context = _default_replica_context(replica_context)
  weights = _float32(features["masked_lm_weights"])
  with_nsp = "next_sentence" in student_outputs
  totals = [tf.reduce_sum(weights)]
  if with_nsp:
    totals.append(tf.cast(tf.size(features["next_sentence_labels"]),
                          tf.float32))
  totals = pretraining_losses.all_reduce_sums(totals, replica_context)
  result = dict(masked_lm_loss=soft_masked_lm_loss(
      features["masked_lm_ids"], weights, student_outputs["mlm_logits"],
      teacher_mlm_logits, ground_truth_ratio, totals[0]))
  result["loss"] = result["masked_lm_loss"]
  if with_nsp:
    result["next_sentence_loss"] = pretraining_losses.next_sentence_loss(
        features["next_sentence_labels"], student_outputs["next_sentence"],
        totals[1])
    result["loss"] = result["loss"] + result["next_sentence_loss"]
  return result
