"""The Keras model of the encoder SavedModel, with `.mlm` and signatures.

`build_export_model(pretrainer)` wraps a pretrainer's encoder (sharing its
variables) in a functional model with the TF-Hub text encoder API; its `.mlm`
attribute adds the masked-LM head. The same function builds the model that is
saved (`export.encoder_savedmodel`) and the one rebuilt from a SavedModel
for TFLite (`export.rebuild`), so both have one object graph.

Example:

>>> core_model = build_export_model(build_pretrainer(config))
>>> outputs = core_model(dict(input_word_ids=ids, input_mask=mask,
...                           input_type_ids=types))
>>> sorted(outputs)
['default', 'encoder_outputs', 'pooled_output', 'sequence_output']
"""

from typing import Dict

import tensorflow as tf
import tf_keras

from mobilebert_tf import _compat
from mobilebert_tf.encoder import ENCODER_INPUTS

ENCODER_OUTPUTS = ("pooled_output", "default", "sequence_output",
                   "encoder_outputs")
MLM_OUTPUTS = ("pooled_output", "sequence_output", "encoder_outputs",
               "mlm_logits")


def build_export_model(pretrainer) -> tf_keras.Model:
  """The Keras model `export_encoder` saves, sharing `pretrainer`'s weights.

  Args:
    pretrainer: a built `MobileBertPretrainer`.

  Returns:
    A functional `tf_keras.Model` from the dict of `ENCODER_INPUTS` to the
    dict of `ENCODER_OUTPUTS`, with attribute `.mlm`: a functional model from
    the same inputs plus `masked_lm_positions` to `MLM_OUTPUTS`. `.mlm` is
    saved with the model, but its head's variables are not among the
    model's `weights` (`_compat.attach_without_weights`, as
    tf-models-official's exports).
  """
  encoder = pretrainer.encoder_network
  inputs = {name: tf_keras.Input(shape=(None,), dtype=tf.int32, name=name)
            for name in ENCODER_INPUTS}
  outputs = encoder(inputs)
  core_model = tf_keras.Model(
      inputs=inputs,
      outputs=dict(
          pooled_output=outputs["pooled_output"],
          # For interchangeability with other text representations.
          default=outputs["pooled_output"],
          sequence_output=outputs["sequence_output"],
          encoder_outputs=outputs["encoder_outputs"]),
      name="mobilebert_hub_encoder")
  mlm_inputs = dict(inputs)
  mlm_inputs["masked_lm_positions"] = tf_keras.Input(
      shape=(None,), dtype=tf.int32, name="masked_lm_positions")
  mlm_outputs = pretrainer(mlm_inputs)
  mlm_model = tf_keras.Model(
      inputs=mlm_inputs,
      outputs={k: mlm_outputs[k] for k in MLM_OUTPUTS},
      name="mobilebert_hub_mlm")
  _compat.attach_without_weights(core_model, "mlm", mlm_model)
  return core_model


def _flat_outputs(outputs) -> Dict[str, tf.Tensor]:
  """Signature outputs: `encoder_outputs` as `encoder_outputs_<i>`."""
  result = {k: outputs[k] for k in MLM_OUTPUTS + ENCODER_OUTPUTS
            if k in outputs and k != "encoder_outputs"}
  for i, tensor in enumerate(outputs["encoder_outputs"]):
    result[f"encoder_outputs_{i}"] = tensor
  return result


def serving_signatures(core_model: tf_keras.Model):
  """`serving_default` and `mlm` signatures with flat, named outputs.

  Args:
    core_model: from `build_export_model`.

  Returns:
    {"serving_default": ..., "mlm": ...} concrete functions of int32
    `[batch, seq]` inputs, for `tf.saved_model.save(signatures=...)`.
  """
  spec = lambda name: tf.TensorSpec([None, None], tf.int32, name=name)

  @tf.function(input_signature=[spec(n) for n in ENCODER_INPUTS])
  def serve(input_word_ids, input_mask, input_type_ids):
    return _flat_outputs(core_model(
        dict(input_word_ids=input_word_ids, input_mask=input_mask,
             input_type_ids=input_type_ids), training=False))

  @tf.function(input_signature=[
      spec(n) for n in ENCODER_INPUTS + ("masked_lm_positions",)])
  def serve_mlm(input_word_ids, input_mask, input_type_ids,
                masked_lm_positions):
    return _flat_outputs(core_model.mlm(
        dict(input_word_ids=input_word_ids, input_mask=input_mask,
             input_type_ids=input_type_ids,
             masked_lm_positions=masked_lm_positions), training=False))

  return {"serving_default": serve.get_concrete_function(),
          "mlm": serve_mlm.get_concrete_function()}
