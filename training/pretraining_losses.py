"""The pretraining losses: masked LM and next-sentence prediction.

Pure functions of tensors, with the formulas of the original
`run_pretraining.py` (google-research/bert, and google-research
`mobilebert/run_pretraining.py`, which keeps them):

* masked LM (`get_masked_lm_output`): the cross-entropy of the softmax of
  the logits against the label at each predicted position, weighted by
  `masked_lm_weights` (1.0 for a real prediction, 0.0 for padding), summed,
  divided by the sum of the weights plus 1e-5;
* next sentence (`get_next_sentence_output`): the mean over examples of the
  cross-entropy of the two-way softmax;
* the pretraining loss is their sum.

Under a `tf.distribute` strategy each replica sees part of the global batch
and the optimizer SUMS the replicas' gradients. `pretraining_loss` therefore
divides each replica's sums by the GLOBAL weight sum and the GLOBAL batch
size (all-reduced over the replicas), so that the sum of the replicas'
losses, and of their gradients, is exactly the loss and gradient of one
replica holding the whole batch. The value a replica returns is its share:
the global loss is the SUM over replicas (`strategy.reduce(SUM, ...)`), not
the mean. (A per-replica `reduce_mean` would be wrong by the replica count
in the gradients, and the masked-LM denominator would differ per replica.)

Accuracies need nothing new: `mobilebert_tf.losses.
MaskedSparseCategoricalAccuracy` with `sample_weight=masked_lm_weights` is
the masked-LM accuracy of the original's `metric_fn`, and
`tf_keras.metrics.SparseCategoricalAccuracy` the next-sentence accuracy.

Example (in a custom training step):

>>> outputs = pretrainer(features, training=True)
>>> losses = pretraining_loss(features, outputs)
>>> gradients = tape.gradient(losses["loss"], pretrainer.trainable_variables)
"""

from typing import Dict, Mapping

import tensorflow as tf

# The original's guard against an all-padding batch: sum(w) + 1e-5.
MASKED_LM_EPSILON = 1e-5


def _per_position_cross_entropy(labels, logits):
  """-log softmax(logits)[label] at each position, float32.

  The same numbers as the original's `-sum(one_hot * log_softmax)`, without
  building the `[..., vocab]` one-hot tensor. Unlike the one-hot form (which
  silently gives 0 for an id >= vocab), an out-of-range label raises on CPU.
  """
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))


def masked_lm_loss(masked_lm_ids, masked_lm_weights, mlm_logits,
                   weight_sum=None) -> tf.Tensor:
  """The weighted masked-LM cross-entropy, as the original's.

  Args:
    masked_lm_ids: int `[batch, num_predictions]`. The original token ids at
      the masked positions (any valid id, usually 0, at padding).
    masked_lm_weights: float `[batch, num_predictions]`. 1.0 for a real
      prediction, 0.0 for padding (any non-negative weight works).
    mlm_logits: float `[batch, num_predictions, vocab]`. The pretrainer's
      `mlm_logits`; cast to float32 (mixed precision).
    weight_sum: float scalar or None. The denominator's sum of weights.
      Defaults to `sum(masked_lm_weights)` of this batch; under a strategy
      pass the sum over the GLOBAL batch (`pretraining_loss` does).

  Returns:
    float32 scalar `sum(w * CE) / (weight_sum + 1e-5)`.
  """
  weights = tf.cast(masked_lm_weights, tf.float32)
  per_position = _per_position_cross_entropy(masked_lm_ids, mlm_logits)
  if weight_sum is None:
    weight_sum = tf.reduce_sum(weights)
  numerator = tf.reduce_sum(weights * per_position)
  return numerator / (tf.cast(weight_sum, tf.float32) + MASKED_LM_EPSILON)


def next_sentence_loss(next_sentence_labels, nsp_logits,
                       global_batch_size=None) -> tf.Tensor:
  """The next-sentence cross-entropy summed over examples / batch size.

  Args:
    next_sentence_labels: int `[batch]` or `[batch, 1]`. 0: segment B
      follows A; 1: B is random (the original's convention).
    nsp_logits: float `[batch, 2]`. The pretrainer's `next_sentence`; cast to
      float32.
    global_batch_size: number or scalar tensor, or None. The divisor.
      Defaults to this batch's size; under a strategy pass the GLOBAL batch
      size (`pretraining_loss` does).

  Returns:
    float32 scalar `sum(CE) / global_batch_size`: with the default, the
    original's mean.
  """
  labels = tf.reshape(next_sentence_labels, [-1])
  per_example = _per_position_cross_entropy(labels, nsp_logits)
  if global_batch_size is None:
    global_batch_size = tf.shape(labels)[0]
  return tf.reduce_sum(per_example) / tf.cast(global_batch_size, tf.float32)


def in_strategy_replica_context():
  """The replica context of a `strategy.run`, else None."""
  if not tf.distribute.has_strategy():
    return None
  return tf.distribute.get_replica_context()  # None in cross-replica context


def all_reduce_sums(values, replica_context):
  """Sums of `values` over the replicas of `replica_context` (if any).

  For inputs of a loss only (batch sizes, weight sums): stop_gradient spares
  the tape the all-reduce's gradient.
  """
  if replica_context is None:
    return list(values)
  return [tf.stop_gradient(v) for v in replica_context.all_reduce(
      tf.distribute.ReduceOp.SUM, list(values))]


def pretraining_loss(features: Mapping[str, tf.Tensor],
                     outputs: Mapping[str, tf.Tensor],
                     replica_context=None) -> Dict[str, tf.Tensor]:
  """Masked-LM plus next-sentence loss of one replica's share of a batch.

  Args:
    features: dict with `masked_lm_ids` `[batch, num_predictions]`,
      `masked_lm_weights` `[batch, num_predictions]` and, when `outputs` has
      `next_sentence`, `next_sentence_labels` `[batch]` or `[batch, 1]`
      (the names of tf-models-official's `BertPretrainDataLoader` and
      `training.records.read_dataset`).
    outputs: the pretrainer's outputs: `mlm_logits` `[batch, num_predictions,
      vocab]` and, for a pretrainer with the NSP head, `next_sentence`
      `[batch, 2]`.
    replica_context: a `tf.distribute.ReplicaContext` or None. The weight
      sum and the batch size are all-reduced (SUM) over its replicas.
      Defaults to the current replica context inside a strategy's `run`;
      outside a strategy, or in its cross-replica context, the batch is
      taken as the whole batch.

  Returns:
    dict of float32 scalars: `masked_lm_loss`, `next_sentence_loss` (only
    when `outputs` has `next_sentence`) and `loss`, their sum, the one to
    minimize. In a strategy each is this replica's share: SUM them over the
    replicas for the global value; the replicas' gradients sum to the
    gradient of one replica holding the whole global batch.
  """
  if replica_context is None:
    replica_context = in_strategy_replica_context()
  weights = tf.cast(features["masked_lm_weights"], tf.float32)
  with_nsp = "next_sentence" in outputs
  weight_sum = tf.reduce_sum(weights)
  batch_size = None
  if with_nsp:
    batch_size = tf.cast(
        tf.size(features["next_sentence_labels"]), tf.float32)
  totals = all_reduce_sums(
      [weight_sum] + ([batch_size] if with_nsp else []), replica_context)
  weight_sum, batch_size = totals[0], (totals[1] if with_nsp else None)
  result = dict(masked_lm_loss=masked_lm_loss(
      features["masked_lm_ids"], weights, outputs["mlm_logits"], weight_sum))
  result["loss"] = result["masked_lm_loss"]
  if with_nsp:
    result["next_sentence_loss"] = next_sentence_loss(
        features["next_sentence_labels"], outputs["next_sentence"],
        batch_size)
    result["loss"] = result["loss"] + result["next_sentence_loss"]
  return result
