"""Losses and metrics for the task heads where Keras has none that fits.

* Token classification: `MaskedSparseCategoricalCrossentropy` and
  `MaskedSparseCategoricalAccuracy` average over the labelled tokens only;
  padding and sub-word continuations are labelled `IGNORE_INDEX` (-100, as in
  transformers). Keras' own sparse losses would average over every position
  (and fail on -100).
* Question answering: `span_loss` (the mean of the start and end
  cross-entropies, as transformers and the original `run_squad.py`) for
  custom loops, and `span_loss_compile_kwargs()` for `model.compile` on the
  dict outputs of `MobileBertForQuestionAnswering`. Positions outside
  `[0, seq)` (e.g. -100, or an answer truncated away) are ignored.
* `SpanExactMatch`: the fraction of examples whose predicted start and end
  both equal the gold ones, for custom loops.

Sequence classification, regression, multiple choice and next-sentence
prediction need nothing new: `tf_keras.losses.SparseCategoricalCrossentropy(
from_logits=True)` (or `MeanSquaredError` for regression) fits.

Example:

>>> model.compile(optimizer="adam",
...               loss=MaskedSparseCategoricalCrossentropy(),
...               metrics=[MaskedSparseCategoricalAccuracy()])
"""

import tensorflow as tf
import tf_keras

_PACKAGE = "MobileBertTF"

IGNORE_INDEX = -100


def _valid_labels(labels, num_classes):
  """(labels clipped into range as int32, float32 weights 1 where valid)."""
  labels = tf.cast(labels, tf.int32)
  valid = tf.logical_and(labels >= 0, labels < num_classes)
  return tf.where(valid, labels, 0), tf.cast(valid, tf.float32)


def _broadcast_weights(sample_weight, weights):
  """`sample_weight` as `weights`' shape (`[batch]` or `[batch, 1]` weights
  per example apply to all of its positions)."""
  sample_weight = tf.cast(sample_weight, tf.float32)
  rank = weights.shape.rank
  if sample_weight.shape.rank == rank + 1:
    sample_weight = tf.squeeze(sample_weight, -1)
  if sample_weight.shape.rank == 2 and rank == 2:
    # [batch, 1] from Keras for per-example weights, or [batch, seq].
    return tf.broadcast_to(sample_weight, tf.shape(weights))
  while sample_weight.shape.rank < rank:
    sample_weight = sample_weight[..., tf.newaxis]
  return tf.broadcast_to(sample_weight, tf.shape(weights))


def masked_sparse_categorical_crossentropy(labels, logits, sample_weight=None,
                                           from_logits=True):
  """Mean cross-entropy over the positions with a label in `[0, classes)`.

  Args:
    labels: int `[...]`; any value outside `[0, num_classes)` (conventionally
      `IGNORE_INDEX`) is ignored.
    logits: float `[..., num_classes]` (probabilities if not `from_logits`).
    sample_weight: optional float, broadcastable to `labels`.
    from_logits: bool. Defaults to True.

  Returns:
    float32 scalar: sum of per-position losses / number of counted positions
    (weighted); 0 if none counts.
  """
  logits = tf.convert_to_tensor(logits)
  # Keras' compile passes `[batch, 1]` labels for `[batch, classes]` logits.
  labels = tf.reshape(labels, tf.shape(logits)[:-1])
  labels, weights = _valid_labels(labels, tf.shape(logits)[-1])
  if sample_weight is not None:
    weights *= _broadcast_weights(sample_weight, weights)
  per_position = tf_keras.losses.sparse_categorical_crossentropy(
      labels, tf.cast(logits, tf.float32), from_logits=from_logits)
  return tf.math.divide_no_nan(tf.reduce_sum(per_position * weights),
                               tf.reduce_sum(weights))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MaskedSparseCategoricalCrossentropy(tf_keras.losses.Loss):
  """Sparse categorical cross-entropy averaged over labelled positions only.

  For token classification: `y_true` `[batch, seq]` with `IGNORE_INDEX`
  (-100), or any value outside `[0, num_classes)`, at padding and other
  unlabelled positions; `y_pred` `[batch, seq, num_classes]` logits. The loss
  is the mean over the counted positions of the whole batch, as
  transformers' `CrossEntropyLoss(ignore_index=-100)` (Keras' reductions
  would divide by every position). Also fits start/end positions of
  question answering (`y_true` `[batch]`, `y_pred` `[batch, seq]`).

  Args:
    from_logits: bool. Defaults to True.
    name: str. Defaults to "masked_sparse_categorical_crossentropy".
  """

  def __init__(self, from_logits=True,
               name="masked_sparse_categorical_crossentropy"):
    super().__init__(name=name,
                     reduction=tf_keras.losses.Reduction.SUM_OVER_BATCH_SIZE)
    self.from_logits = from_logits

  def __call__(self, y_true, y_pred, sample_weight=None):
    with tf.name_scope(self.name):
      return masked_sparse_categorical_crossentropy(
          y_true, y_pred, sample_weight=sample_weight,
          from_logits=self.from_logits)

  def call(self, y_true, y_pred):
    return masked_sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=self.from_logits)

  def get_config(self):
    return dict(from_logits=self.from_logits, name=self.name)


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MaskedSparseCategoricalAccuracy(tf_keras.metrics.Metric):
  """Accuracy over the positions with a label in `[0, num_classes)`.

  The counterpart of `MaskedSparseCategoricalCrossentropy`: positions labelled
  `IGNORE_INDEX` (or anything out of range) count neither as right nor wrong.

  Args:
    name: str. Defaults to "masked_accuracy".
  """

  def __init__(self, name="masked_accuracy", **kwargs):
    super().__init__(name=name, **kwargs)
    self.correct = self.add_weight("correct", initializer="zeros")
    self.count = self.add_weight("count", initializer="zeros")

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_pred = tf.convert_to_tensor(y_pred)
    y_true = tf.reshape(y_true, tf.shape(y_pred)[:-1])
    labels, weights = _valid_labels(y_true, tf.shape(y_pred)[-1])
    if sample_weight is not None:
      weights *= _broadcast_weights(sample_weight, weights)
    predicted = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    hits = tf.cast(tf.equal(predicted, labels), tf.float32) * weights
    self.correct.assign_add(tf.reduce_sum(hits))
    self.count.assign_add(tf.reduce_sum(weights))

  def result(self):
    return tf.math.divide_no_nan(self.correct, self.count)

  def reset_state(self):
    self.correct.assign(0.0)
    self.count.assign(0.0)


def span_loss(start_positions, end_positions, start_logits, end_logits):
  """Mean of the start and end cross-entropies, as SQuAD fine-tuning.

  Args:
    start_positions, end_positions: int `[batch]` gold token positions.
      Positions outside `[0, seq)` are ignored (each term averages over its
      valid examples), like transformers' clamped `ignore_index`.
    start_logits, end_logits: float `[batch, seq]`.

  Returns:
    float32 scalar `(CE(start) + CE(end)) / 2`.
  """
  start = masked_sparse_categorical_crossentropy(start_positions, start_logits)
  end = masked_sparse_categorical_crossentropy(end_positions, end_logits)
  return (start + end) / 2.0


def span_loss_compile_kwargs():
  """`model.compile` arguments for the span loss on the QA model's outputs.

  `MobileBertForQuestionAnswering` returns `{"start_logits", "end_logits"}`;
  fit it with `y={"start_logits": start_positions, "end_logits":
  end_positions}`. The weighted sum equals `span_loss`.

  Returns:
    dict with `loss`, `loss_weights` and `metrics` (position accuracies).

  Example:
  >>> model.compile(optimizer="adam", **span_loss_compile_kwargs())
  """
  keys = ("start_logits", "end_logits")
  return dict(
      loss={k: MaskedSparseCategoricalCrossentropy() for k in keys},
      loss_weights={k: 0.5 for k in keys},
      metrics={k: [MaskedSparseCategoricalAccuracy(name="accuracy")]
               for k in keys})


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class SpanExactMatch(tf_keras.metrics.Metric):
  """Fraction of examples whose argmax start and end both equal the gold.

  Token-level exact match for custom loops (`update_state` takes the four
  tensors); for text-level SQuAD scores see `qa.squad_exact_match`.

  Args:
    name: str. Defaults to "span_exact_match".
  """

  def __init__(self, name="span_exact_match", **kwargs):
    super().__init__(name=name, **kwargs)
    self.correct = self.add_weight("correct", initializer="zeros")
    self.count = self.add_weight("count", initializer="zeros")

  def update_state(self, start_positions, end_positions, start_logits,
                   end_logits, sample_weight=None):
    start_positions = tf.cast(tf.reshape(start_positions, [-1]), tf.int32)
    end_positions = tf.cast(tf.reshape(end_positions, [-1]), tf.int32)
    hit = tf.logical_and(
        tf.equal(tf.argmax(start_logits, -1, output_type=tf.int32),
                 start_positions),
        tf.equal(tf.argmax(end_logits, -1, output_type=tf.int32),
                 end_positions))
    weights = tf.ones_like(start_positions, tf.float32)
    if sample_weight is not None:
      weights *= tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
    self.correct.assign_add(tf.reduce_sum(tf.cast(hit, tf.float32) * weights))
    self.count.assign_add(tf.reduce_sum(weights))

  def result(self):
    return tf.math.divide_no_nan(self.correct, self.count)

  def reset_state(self):
    self.correct.assign(0.0)
    self.count.assign(0.0)
