"""MobileBERT pretrainer: encoder + masked-LM head (+ next-sentence head).

BertPretrainerV2-style (tf-models-official): the same inputs, outputs and
`checkpoint_items`, so `tf.train.Checkpoint(**pretrainer.checkpoint_items)`
interchanges with its MobileBERT pretrainer.
"""

import tensorflow as tf
import tf_keras

from mobilebert_tf import layers
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.encoder import MobileBERTEncoder
from mobilebert_tf.encoder import build_encoder


@tf_keras.utils.register_keras_serializable(package="MobileBertTF")
class MobileBertPretrainer(tf_keras.Model):
  """Encoder plus pretraining heads.

  Args:
    encoder_network: a `MobileBERTEncoder`.
    masked_lm: a `MobileBertMaskedLM` tied to the encoder's embedding table.
    next_sentence: optional `Dense(2)` on the pooled output: the original's
      `cls/seq_relationship` head. tf-models-official has none; leave it out
      for checkpoint interchange with it.
    config: the `MobileBertConfig` the parts were built from (for
      `get_config`); optional.

  Inputs: the encoder's dict plus int32 `masked_lm_positions`
    `[batch, num_predictions]`.

  Outputs: the encoder's outputs plus `mlm_logits`
    `[batch, num_predictions, vocab]`, and `next_sentence` `[batch, 2]` with
    the NSP head.
  """

  def __init__(self, encoder_network, masked_lm, next_sentence=None,
               config=None, name="bert", **kwargs):
    super().__init__(name=name, **kwargs)
    if not isinstance(encoder_network, MobileBERTEncoder):
      raise TypeError("`encoder_network` must be a MobileBERTEncoder. "
                      f"Received: {type(encoder_network).__name__}")
    self.encoder_network = encoder_network
    self.masked_lm = masked_lm
    self.next_sentence = next_sentence
    self._mobilebert_config = config
    inputs = dict(encoder_network.input)
    inputs["masked_lm_positions"] = tf_keras.Input(
        shape=(None,), dtype=tf.int32, name="masked_lm_positions")
    self._model_inputs = inputs

  @property
  def model_inputs(self):
    """Symbolic inputs, e.g. for `pretrainer(pretrainer.model_inputs)`."""
    return dict(self._model_inputs)

  def call(self, inputs, training=None):
    encoder_inputs = {k: inputs[k] for k in ENCODER_INPUTS}
    outputs = dict(self.encoder_network(encoder_inputs, training=training))
    if "masked_lm_positions" in inputs:
      outputs["mlm_logits"] = self.masked_lm(
          outputs["sequence_output"], inputs["masked_lm_positions"])
    if self.next_sentence is not None:
      outputs["next_sentence"] = tf.cast(
          self.next_sentence(outputs["pooled_output"]), tf.float32)
    return outputs

  @property
  def checkpoint_items(self):
    """Objects for `tf.train.Checkpoint(**checkpoint_items)`."""
    items = dict(encoder=self.encoder_network, masked_lm=self.masked_lm)
    if self.next_sentence is not None:
      items["next_sentence"] = self.next_sentence
    return items

  def get_config(self):
    if self._mobilebert_config is None:
      raise NotImplementedError(
          "Only pretrainers made by build_pretrainer(config) serialize; this "
          "one was assembled from parts.")
    return dict(config=self._mobilebert_config.to_dict(),
                with_nsp=self.next_sentence is not None, name=self.name)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    return build_pretrainer(MobileBertConfig.from_dict(config.pop("config")),
                            **config)


def build_pretrainer(config: MobileBertConfig, with_nsp=False,
                     name="bert", **encoder_overrides) -> MobileBertPretrainer:
  """Builds a pretrainer for a config, with its variables created.

  Args:
    config: the model configuration.
    with_nsp: bool. Add the next-sentence-prediction head. Defaults to False
      (like tf-models-official, whose checkpoints then interchange exactly).
    name: model name.
    **encoder_overrides: `MobileBERTEncoder` arguments to set.
  """
  encoder = build_encoder(config, **encoder_overrides)
  initializer = tf_keras.initializers.TruncatedNormal(
      stddev=config.initializer_range)
  masked_lm = layers.MobileBertMaskedLM(
      embedding_table=encoder.get_embedding_table(),
      activation=config.hidden_act.lower(),
      initializer=initializer,
      name="cls/predictions")
  next_sentence = tf_keras.layers.Dense(
      2, kernel_initializer=initializer,
      name="next_sentence") if with_nsp else None
  pretrainer = MobileBertPretrainer(encoder, masked_lm, next_sentence,
                                    config=config, name=name)
  _ = pretrainer(pretrainer.model_inputs)  # creates every variable
  return pretrainer
