"""Task models over `MobileBERTEncoder`: the heads transformers offers.

Each model is a functional `tf_keras.Model` that takes the encoder's dict of
int32 inputs and returns float32 logits, computed with the math of the
transformers model of the same name (`transformers.MobileBertFor...`), so the
same weights give the same numbers:

| MobileBertFor...       | reads           | float32 logits              |
|------------------------|-----------------|-----------------------------|
| SequenceClassification | pooled_output   | `[batch, num_classes]`      |
| TokenClassification    | sequence_output | `[batch, seq, num_classes]` |
| QuestionAnswering      | sequence_output | start, end `[batch, seq]`   |
| MultipleChoice         | pooled_output   | `[batch, num_choices]`      |
| NextSentencePrediction | pooled_output   | `[batch, 2]`                |
| MaskedLM               | sequence_output | `[batch, P, vocab]`         |

Pretrained weights: each model has `checkpoint_items` with the key `encoder`
(and the pretraining heads their pretrainer keys `masked_lm`,
`next_sentence`), so a checkpoint written as
`tf.train.Checkpoint(**pretrainer.checkpoint_items)` restores into it:

>>> tf.train.Checkpoint(encoder=model.encoder_network).read(path
...     ).assert_existing_objects_matched().expect_partial()

restores the encoder and leaves the task head freshly initialised
(`expect_partial` silences the warning about the pretraining heads in the
checkpoint that are not restored).

Dropout: the fine-tuning heads (sequence and token classification, question
answering, multiple choice) drop out their input with rate
`classifier_dropout`, which defaults to the encoder's `hidden_dropout_prob`
(as transformers' `classifier_dropout=None`). transformers' question-answering
head has no dropout: pass `classifier_dropout=0.0` for exactly its training
behaviour. The pretraining heads (next sentence, masked LM) have none, as in
pretraining. Dropout is only active with `training=True`.

The encoder can also be a `hub.KerasLayer` of an exported MobileBERT encoder
(or any Keras layer with the same dict inputs and outputs); `get_config`
then serializes that layer with `tf_keras.utils.serialize_keras_object`.
"""

from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras

from mobilebert_tf import _compat
from mobilebert_tf import layers
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.encoder import MobileBERTEncoder
from mobilebert_tf.encoder import build_encoder

_PACKAGE = "MobileBertTF"

# The start/end logit of a token outside the context. Finite, so that a
# softmax over a fully masked row stays defined; exp(-1e9 - x) is 0 in float32.
MASKED_LOGIT = -1e9


# === Small layers (serializable, no Lambda) ===


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class SpanLogits(tf_keras.layers.Layer):
  """Start or end logits from `[batch, seq, 2]`, masked outside the context.

  Args:
    index: int. 0 for the start logits, 1 for the end logits.
    mask_outside_context: bool. Set the logits of tokens outside the context
      to `masked_logit`. The context is every real token (`input_mask` 1) of
      token type `context_type_id`, plus position 0 (`[CLS]`, the "no answer"
      position of SQuAD 2.0). Defaults to True.
    context_type_id: int. Token type of the context segment; 1 for inputs
      packed as `[CLS] question [SEP] context [SEP]`. Defaults to 1.
    masked_logit: float, or None for one below the row's lowest logit.
      Either ranks the masked tokens below every other, so spans are chosen
      alike. None keeps the output within the logits' range: a full-integer
      TFLite model has one int8 step for its whole output range, which -1e9
      would make about 4e6 (`export.qa_tflite`). Defaults to `MASKED_LOGIT`.

  Call args:
    logits: float `[batch, seq, 2]`.
    input_mask: int `[batch, seq]`.
    input_type_ids: int `[batch, seq]`.

  Returns:
    float32 `[batch, seq]`.
  """

  def __init__(self, index, mask_outside_context=True, context_type_id=1,
               masked_logit=MASKED_LOGIT, **kwargs):
    super().__init__(**kwargs)
    if index not in (0, 1):
      raise ValueError(f"`index` must be 0 (start) or 1 (end). Received: "
                       f"index={index!r}")
    self.index = index
    self.mask_outside_context = bool(mask_outside_context)
    self.context_type_id = int(context_type_id)
    self.masked_logit = None if masked_logit is None else float(masked_logit)

  def call(self, logits, input_mask, input_type_ids):
    logits = tf.cast(logits[..., self.index], tf.float32)  # [batch, seq]
    if not self.mask_outside_context:
      return logits
    context = tf.logical_and(tf.not_equal(input_mask, 0),
                             tf.equal(input_type_ids, self.context_type_id))
    # Position 0 stays, for "no answer".
    first = tf.equal(tf.range(tf.shape(logits)[1]), 0)[tf.newaxis, :]
    fill = self.masked_logit
    if fill is None:
      fill = tf.reduce_min(logits, axis=1, keepdims=True) - 1.0
    return tf.where(tf.logical_or(context, first), logits, fill)

  def get_config(self):
    config = super().get_config()
    config.update(index=self.index,
                  mask_outside_context=self.mask_outside_context,
                  context_type_id=self.context_type_id,
                  masked_logit=self.masked_logit)
    return config


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class FlattenChoices(tf_keras.layers.Layer):
  """`[batch, num_choices, seq]` -> `[batch * num_choices, seq]`, per input."""

  def call(self, inputs):
    return {name: tf.reshape(t, [-1, tf.shape(t)[-1]])
            for name, t in inputs.items()}


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class UnflattenChoices(tf_keras.layers.Layer):
  """`[batch * num_choices, 1]` scores -> float32 `[batch, num_choices]`.

  Call args:
    scores: `[batch * num_choices, 1]`.
    reference: any `[batch, num_choices, ...]` tensor (for the sizes).
  """

  def call(self, scores, reference):
    shape = tf.shape(reference)
    return tf.reshape(tf.cast(scores, tf.float32), shape[:2])


# === Base ===


def _encoder_inputs(rank=2):
  """Fresh symbolic int32 inputs, `[batch, seq]` (or one more axis)."""
  shape = (None,) * (rank - 1)
  return {name: tf_keras.Input(shape=shape, dtype=tf.int32, name=name)
          for name in ENCODER_INPUTS}


def _encoder_setting(encoder_network, key, default):
  """A constructor argument of a `MobileBERTEncoder` (default for others)."""
  if isinstance(encoder_network, MobileBERTEncoder):
    return encoder_network.get_config().get(key, default)
  return default


def _check_encoder(encoder_network):
  if not callable(encoder_network) or not isinstance(
      encoder_network, (tf_keras.layers.Layer, tf.Module)):
    raise TypeError(
        "`encoder_network` must be a MobileBERTEncoder or a Keras layer with "
        "its dict inputs and outputs (e.g. hub.KerasLayer). Received: "
        f"{type(encoder_network).__name__}")


def _quantization_aware(encoder_network) -> bool:
  """Whether the encoder is a `MobileBERTEncoder` with fake quantization."""
  return isinstance(encoder_network, MobileBERTEncoder) and bool(
      encoder_network.get_config().get("use_quantized_training"))


def _check_rate(name, value):
  if value is None:
    return
  if isinstance(value, bool) or not isinstance(value, (int, float)) or (
      not 0.0 <= value < 1.0):
    raise ValueError(f"`{name}` must be a number in [0, 1) or None. "
                     f"Received: {name}={value!r}")


def _check_num_classes(num_classes):
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or (
      num_classes < 1):
    raise ValueError("`num_classes` must be a positive integer (1 for "
                     f"regression). Received: num_classes={num_classes!r}")


class _TaskModel(tf_keras.Model):
  """Shared plumbing: encoder and head attributes, config, checkpoint items."""

  def _finish(self, encoder_network, head_items: Dict[str, Any],
              config: Dict[str, Any]):
    # Set after the functional __init__ (as Model Garden's BertClassifier):
    # the layers are already tracked through the graph.
    self._encoder_network = encoder_network
    for key, item in head_items.items():
      setattr(self, key, item)
    # Plain containers: Keras would wrap tracked ones (not JSON-serializable).
    with _compat.untracked_attributes(self):
      self._head_items = dict(head_items)
      self._task_config = dict(config)

  @property
  def encoder_network(self):
    """The encoder (a `MobileBERTEncoder` or a layer standing in for one)."""
    return self._encoder_network

  @property
  def checkpoint_items(self) -> Dict[str, Any]:
    """Objects for `tf.train.Checkpoint(**checkpoint_items)`.

    `encoder` is keyed as in the pretrainer's `checkpoint_items`, so the
    encoder of a pretrained checkpoint restores with
    `tf.train.Checkpoint(encoder=...)`; the head keys are the model's own.
    """
    items = dict(encoder=self._encoder_network)
    items.update(self._head_items)
    return items

  def get_config(self):
    config = dict(self._task_config)
    config["encoder_network"] = tf_keras.utils.serialize_keras_object(
        self._encoder_network)
    config["name"] = self.name
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    encoder = config.pop("encoder_network")
    if isinstance(encoder, dict):
      encoder = tf_keras.utils.deserialize_keras_object(
          encoder, custom_objects=custom_objects)
    return cls(encoder_network=encoder, **config)


def _resolve_dropout(encoder_network, classifier_dropout):
  _check_rate("classifier_dropout", classifier_dropout)
  if classifier_dropout is not None:
    return float(classifier_dropout)
  return float(_encoder_setting(encoder_network, "hidden_dropout_prob", 0.1))


def _resolve_initializer(encoder_network, initializer):
  if initializer is None:
    initializer = tf_keras.initializers.TruncatedNormal(
        stddev=_encoder_setting(encoder_network, "initializer_range", 0.02))
  return tf_keras.initializers.get(initializer)


# === Fine-tuning heads ===


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForSequenceClassification(_TaskModel):
  """Sequence classification (or regression) on the pooled output.

  `logits = classifier(dropout(pooled_output))`, as
  `transformers.MobileBertForSequenceClassification`.

  Args:
    encoder_network: a `MobileBERTEncoder` (or a `hub.KerasLayer` of one).
    num_classes: int. Number of classes; 1 for regression (one score).
    classifier_dropout: float or None. Dropout on the pooled output; None
      uses the encoder's `hidden_dropout_prob`. Defaults to None.
    initializer: initializer of the classifier kernel. Defaults to truncated
      normal with the encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, seq]` `input_word_ids`, `input_mask`,
    `input_type_ids`.

  Returns:
    float32 logits `[batch, num_classes]` (`[batch, 1]` for regression).

  Raises:
    ValueError: `num_classes` < 1 or `classifier_dropout` outside [0, 1).

  Example:
  >>> config = MobileBertConfig(vocab_size=100, hidden_size=32,
  ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=32)
  >>> model = build_for_sequence_classification(config, num_classes=3)
  >>> ids = tf.constant([[2, 7, 3, 0]])
  >>> model(dict(input_word_ids=ids, input_mask=tf.sign(ids),
  ...            input_type_ids=tf.zeros_like(ids))).shape
  TensorShape([1, 3])
  """

  def __init__(self, encoder_network, num_classes, classifier_dropout=None,
               initializer=None,
               name="mobile_bert_for_sequence_classification", **kwargs):
    _check_encoder(encoder_network)
    _check_num_classes(num_classes)
    rate = _resolve_dropout(encoder_network, classifier_dropout)
    init = _resolve_initializer(encoder_network, initializer)
    inputs = _encoder_inputs()
    pooled = encoder_network(inputs)["pooled_output"]  # [batch, hidden]
    dropout = tf_keras.layers.Dropout(rate, name="classifier_dropout")
    classifier = tf_keras.layers.Dense(
        num_classes, kernel_initializer=init, dtype=tf.float32,
        name="classifier")
    logits = classifier(dropout(pooled))  # [batch, num_classes]
    super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
    self.num_classes = num_classes
    self._finish(encoder_network, dict(classifier=classifier), dict(
        num_classes=num_classes, classifier_dropout=classifier_dropout,
        initializer=tf_keras.initializers.serialize(init)))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForTokenClassification(_TaskModel):
  """Per-token classification (tagging) on the sequence output.

  `logits = classifier(dropout(sequence_output))`, as
  `transformers.MobileBertForTokenClassification`. Padding positions get
  logits too; `losses.MaskedSparseCategoricalCrossentropy` ignores them.

  Args:
    encoder_network: a `MobileBERTEncoder` (or a `hub.KerasLayer` of one).
    num_classes: int. Number of tags.
    classifier_dropout: float or None. Dropout on the sequence output; None
      uses the encoder's `hidden_dropout_prob`. Defaults to None.
    initializer: initializer of the classifier kernel. Defaults to truncated
      normal with the encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, seq]` `input_word_ids`, `input_mask`,
    `input_type_ids`.

  Returns:
    float32 logits `[batch, seq, num_classes]`.

  Raises:
    ValueError: `num_classes` < 1 or `classifier_dropout` outside [0, 1).

  Example:
  >>> model = build_for_token_classification(config, num_classes=5)
  >>> model(inputs).shape  # inputs of shape [1, 4]
  TensorShape([1, 4, 5])
  """

  def __init__(self, encoder_network, num_classes, classifier_dropout=None,
               initializer=None, name="mobile_bert_for_token_classification",
               **kwargs):
    _check_encoder(encoder_network)
    _check_num_classes(num_classes)
    rate = _resolve_dropout(encoder_network, classifier_dropout)
    init = _resolve_initializer(encoder_network, initializer)
    inputs = _encoder_inputs()
    sequence = encoder_network(inputs)["sequence_output"]  # [b, seq, hidden]
    dropout = tf_keras.layers.Dropout(rate, name="classifier_dropout")
    classifier = tf_keras.layers.Dense(
        num_classes, kernel_initializer=init, dtype=tf.float32,
        name="classifier")
    logits = classifier(dropout(sequence))  # [batch, seq, num_classes]
    super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
    self.num_classes = num_classes
    self._finish(encoder_network, dict(classifier=classifier), dict(
        num_classes=num_classes, classifier_dropout=classifier_dropout,
        initializer=tf_keras.initializers.serialize(init)))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForQuestionAnswering(_TaskModel):
  """Extractive question answering: start and end logits per token.

  `start, end = split(qa_outputs(dropout(sequence_output)))` with
  `qa_outputs` a `Dense(2)`, as `transformers.MobileBertForQuestionAnswering`
  (which has no dropout: pass `classifier_dropout=0.0` to match it in
  training too).

  Masking (`mask_outside_context=True`): inputs are packed as
  `[CLS] question [SEP] context [SEP] [PAD]...` with the context of token type
  1. Logits are set to `masked_logit` (default `MASKED_LOGIT`, -1e9)
  everywhere except at real tokens of type `context_type_id` and at
  position 0: a span can then neither start nor end in the question or the
  padding, and `[CLS]` stays available as the "no answer" of SQuAD 2.0. The
  final `[SEP]` has type 1 and stays unmasked (the model learns to avoid it;
  `qa.best_spans` excludes it with the context mask of `qa.context_mask`).
  Where unmasked, the logits equal transformers'.

  Quantization-aware (an encoder with `use_quantized_training`): the sequence
  output is fake-quantized before `qa_outputs` (an `ActivationQuantizer`,
  `qa_outputs_input_quantizer`), as the blocks' dense inputs are. Without
  that range TF 2.20's converter cannot write the full-integer model once the
  `qa_outputs` bias is non-zero, that is after any training step (measured:
  "'tfl.fully_connected' op result #0 must be ... QI8 ..., but got ...
  i32"); the classifier's `[batch, hidden]` input converts without it.

  Args:
    encoder_network: a `MobileBERTEncoder` (or a `hub.KerasLayer` of one).
    classifier_dropout: float or None. Dropout on the sequence output; None
      uses the encoder's `hidden_dropout_prob`. Defaults to None.
    mask_outside_context: bool. See above. Defaults to True.
    context_type_id: int. Token type of the context. Defaults to 1.
    masked_logit: float, or None for one below each row's lowest logit (the
      TFLite models': see `SpanLogits`). Defaults to `MASKED_LOGIT`.
    initializer: initializer of the `qa_outputs` kernel. Defaults to
      truncated normal with the encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, seq]` `input_word_ids`, `input_mask`,
    `input_type_ids`.

  Returns:
    A dict of float32 `start_logits` and `end_logits`, each `[batch, seq]`.

  Example:
  >>> model = build_for_question_answering(config)
  >>> out = model(inputs)  # inputs of shape [1, 4]
  >>> out["start_logits"].shape
  TensorShape([1, 4])
  """

  def __init__(self, encoder_network, classifier_dropout=None,
               mask_outside_context=True, context_type_id=1,
               masked_logit=MASKED_LOGIT, initializer=None,
               name="mobile_bert_for_question_answering", **kwargs):
    _check_encoder(encoder_network)
    rate = _resolve_dropout(encoder_network, classifier_dropout)
    init = _resolve_initializer(encoder_network, initializer)
    inputs = _encoder_inputs()
    sequence = encoder_network(inputs)["sequence_output"]  # [b, seq, hidden]
    head_items = {}
    if _quantization_aware(encoder_network):
      quantizer = layers.ActivationQuantizer(
          name="qa_outputs_input_quantizer")
      sequence = quantizer(sequence)
      head_items["qa_outputs_input_quantizer"] = quantizer
    dropout = tf_keras.layers.Dropout(rate, name="classifier_dropout")
    qa_outputs = tf_keras.layers.Dense(
        2, kernel_initializer=init, dtype=tf.float32, name="qa_outputs")
    head_items["qa_outputs"] = qa_outputs
    logits = qa_outputs(dropout(sequence))  # [batch, seq, 2]
    # One layer per output, so Keras names the outputs (and their losses and
    # metrics in `fit`) "start_logits" and "end_logits".
    outputs = {
        name: SpanLogits(index, mask_outside_context, context_type_id,
                         masked_logit, name=name)(
                             logits, inputs["input_mask"],
                             inputs["input_type_ids"])
        for index, name in enumerate(("start_logits", "end_logits"))}
    super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
    self._finish(encoder_network, head_items, dict(
        classifier_dropout=classifier_dropout,
        mask_outside_context=mask_outside_context,
        context_type_id=context_type_id, masked_logit=masked_logit,
        initializer=tf_keras.initializers.serialize(init)))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForMultipleChoice(_TaskModel):
  """Multiple choice: one score per (context, choice) pair, softmaxed across.

  Each choice is encoded separately (`[batch * num_choices, seq]`);
  `score = classifier(dropout(pooled_output))` with a `Dense(1)`; the scores
  are reshaped to `[batch, num_choices]`, as
  `transformers.MobileBertForMultipleChoice`.

  Args:
    encoder_network: a `MobileBERTEncoder` (or a `hub.KerasLayer` of one).
    classifier_dropout: float or None. Dropout on the pooled output; None
      uses the encoder's `hidden_dropout_prob`. Defaults to None.
    initializer: initializer of the classifier kernel. Defaults to truncated
      normal with the encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, num_choices, seq]` `input_word_ids`,
    `input_mask`, `input_type_ids`.

  Returns:
    float32 logits `[batch, num_choices]`.

  Example:
  >>> model = build_for_multiple_choice(config)
  >>> model(inputs).shape  # inputs of shape [2, 4, 8]
  TensorShape([2, 4])
  """

  def __init__(self, encoder_network, classifier_dropout=None,
               initializer=None, name="mobile_bert_for_multiple_choice",
               **kwargs):
    _check_encoder(encoder_network)
    rate = _resolve_dropout(encoder_network, classifier_dropout)
    init = _resolve_initializer(encoder_network, initializer)
    inputs = _encoder_inputs(rank=3)
    flat = FlattenChoices(name="flatten_choices")(inputs)  # [b * c, seq]
    pooled = encoder_network(flat)["pooled_output"]  # [b * c, hidden]
    dropout = tf_keras.layers.Dropout(rate, name="classifier_dropout")
    classifier = tf_keras.layers.Dense(
        1, kernel_initializer=init, dtype=tf.float32, name="classifier")
    scores = classifier(dropout(pooled))  # [b * c, 1]
    logits = UnflattenChoices(name="unflatten_choices")(
        scores, inputs["input_word_ids"])  # [batch, num_choices]
    super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
    self._finish(encoder_network, dict(classifier=classifier), dict(
        classifier_dropout=classifier_dropout,
        initializer=tf_keras.initializers.serialize(init)))


# === Pretraining heads ===


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForNextSentencePrediction(_TaskModel):
  """Next-sentence prediction: is segment B the continuation of segment A?

  `logits = next_sentence(pooled_output)` with a `Dense(2)` (class 0: B
  follows A, as in the original data), as
  `transformers.MobileBertForNextSentencePrediction`; no dropout. The head is
  keyed `next_sentence` in `checkpoint_items`, as in
  `build_pretrainer(config, with_nsp=True)`, so a pretrained NSP head restores
  with `tf.train.Checkpoint(**model.checkpoint_items)`.

  Args:
    encoder_network: a `MobileBERTEncoder` (or a `hub.KerasLayer` of one).
    initializer: kernel initializer. Defaults to truncated normal with the
      encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, seq]` `input_word_ids`, `input_mask`,
    `input_type_ids`.

  Returns:
    float32 logits `[batch, 2]`.

  Example:
  >>> model = build_for_next_sentence_prediction(config)
  >>> model(inputs).shape  # inputs of shape [1, 4]
  TensorShape([1, 2])
  """

  def __init__(self, encoder_network, initializer=None,
               name="mobile_bert_for_next_sentence_prediction", **kwargs):
    _check_encoder(encoder_network)
    init = _resolve_initializer(encoder_network, initializer)
    inputs = _encoder_inputs()
    pooled = encoder_network(inputs)["pooled_output"]
    next_sentence = tf_keras.layers.Dense(
        2, kernel_initializer=init, dtype=tf.float32, name="next_sentence")
    logits = next_sentence(pooled)  # [batch, 2]
    super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
    self._finish(encoder_network, dict(next_sentence=next_sentence), dict(
        initializer=tf_keras.initializers.serialize(init)))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertForMaskedLM(_TaskModel):
  """Masked language model: vocabulary logits at the given positions.

  The head is `layers.MobileBertMaskedLM` tied to the encoder's word
  embeddings (transform dense, activation, LayerNorm, output matrix = the
  embedding table widened by `extra_output_weights`, bias), as
  `transformers.MobileBertForMaskedLM`, which computes every position: pass
  all positions (`tf.range(seq)` per row) for its output. Keyed `masked_lm`
  in `checkpoint_items`, as in the pretrainer, so a pretrained head restores
  with `tf.train.Checkpoint(**model.checkpoint_items)`.

  Args:
    encoder_network: a `MobileBERTEncoder`.
    activation: str. Transform activation; defaults to the encoder's
      `intermediate_act_fn` (the config's `hidden_act`).
    initializer: initializer of the head. Defaults to truncated normal with
      the encoder's `initializer_range`.
    name: str. Model name.

  Inputs: a dict of int32 `[batch, seq]` `input_word_ids`, `input_mask`,
    `input_type_ids` and int32 `masked_lm_positions` `[batch, P]`.

  Returns:
    float32 logits `[batch, P, vocab]`.

  Example:
  >>> model = build_for_masked_lm(config)
  >>> inputs["masked_lm_positions"] = tf.constant([[1, 2]])
  >>> model(inputs).shape
  TensorShape([1, 2, 100])
  """

  def __init__(self, encoder_network, activation=None, initializer=None,
               name="mobile_bert_for_masked_lm", **kwargs):
    if not isinstance(encoder_network, MobileBERTEncoder):
      raise TypeError("`encoder_network` must be a MobileBERTEncoder (the MLM "
                      "head ties its word embeddings). Received: "
                      f"{type(encoder_network).__name__}")
    init = _resolve_initializer(encoder_network, initializer)
    if activation is None:
      activation = _encoder_setting(encoder_network, "intermediate_act_fn",
                                    "gelu")
    inputs = _encoder_inputs()
    inputs["masked_lm_positions"] = tf_keras.Input(
        shape=(None,), dtype=tf.int32, name="masked_lm_positions")
    sequence = encoder_network(
        {k: inputs[k] for k in ENCODER_INPUTS})["sequence_output"]
    masked_lm = layers.MobileBertMaskedLM(
        embedding_table=encoder_network.get_embedding_table(),
        activation=activation, initializer=init, name="cls/predictions")
    logits = masked_lm(sequence, inputs["masked_lm_positions"])
    super().__init__(inputs=inputs, outputs=logits, name=name, **kwargs)
    self._finish(encoder_network, dict(masked_lm=masked_lm), dict(
        activation=activation,
        initializer=tf_keras.initializers.serialize(init)))


# === Builders ===


def _build_encoder(config, encoder_overrides):
  if not isinstance(config, MobileBertConfig):
    raise TypeError("`config` must be a MobileBertConfig. Received: "
                    f"{type(config).__name__}")
  return build_encoder(config, **encoder_overrides)


def build_for_sequence_classification(
    config: MobileBertConfig, num_classes: int,
    classifier_dropout: Optional[float] = None,
    **encoder_overrides) -> MobileBertForSequenceClassification:
  """A fresh `MobileBertForSequenceClassification` for a config.

  Args:
    config: the model configuration.
    num_classes: int. 1 for regression.
    classifier_dropout: float or None (the config's `hidden_dropout_prob`).
    **encoder_overrides: `MobileBERTEncoder` arguments to set.
  """
  return MobileBertForSequenceClassification(
      _build_encoder(config, encoder_overrides), num_classes,
      classifier_dropout=classifier_dropout)


def build_for_token_classification(
    config: MobileBertConfig, num_classes: int,
    classifier_dropout: Optional[float] = None,
    **encoder_overrides) -> MobileBertForTokenClassification:
  """A fresh `MobileBertForTokenClassification` for a config."""
  return MobileBertForTokenClassification(
      _build_encoder(config, encoder_overrides), num_classes,
      classifier_dropout=classifier_dropout)


def build_for_question_answering(
    config: MobileBertConfig, classifier_dropout: Optional[float] = None,
    mask_outside_context: bool = True,
    **encoder_overrides) -> MobileBertForQuestionAnswering:
  """A fresh `MobileBertForQuestionAnswering` for a config."""
  return MobileBertForQuestionAnswering(
      _build_encoder(config, encoder_overrides),
      classifier_dropout=classifier_dropout,
      mask_outside_context=mask_outside_context)


def build_for_multiple_choice(
    config: MobileBertConfig, classifier_dropout: Optional[float] = None,
    **encoder_overrides) -> MobileBertForMultipleChoice:
  """A fresh `MobileBertForMultipleChoice` for a config."""
  return MobileBertForMultipleChoice(
      _build_encoder(config, encoder_overrides),
      classifier_dropout=classifier_dropout)


def build_for_next_sentence_prediction(
    config: MobileBertConfig,
    **encoder_overrides) -> MobileBertForNextSentencePrediction:
  """A fresh `MobileBertForNextSentencePrediction` for a config."""
  return MobileBertForNextSentencePrediction(
      _build_encoder(config, encoder_overrides))


def build_for_masked_lm(config: MobileBertConfig,
                        **encoder_overrides) -> MobileBertForMaskedLM:
  """A fresh `MobileBertForMaskedLM` for a config."""
  return MobileBertForMaskedLM(_build_encoder(config, encoder_overrides),
                               activation=config.hidden_act.lower())
