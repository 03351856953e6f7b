"""Inference with the weights frozen into the graph: `freeze_for_inference`.

A Keras model reads its weights from variables on every call. On CPU,
TensorFlow's oneDNN kernels then re-pack every weight matrix for every
matmul; with constant weights they pack once and reuse the packed copy,
which for MobileBERT's small matmuls is most of the difference.

Freezing is what TFLite conversion and TF1's `freeze_graph` do; the result
is a snapshot that does not see later changes to the model's variables
(training, restoring a checkpoint): freeze again after those. It costs
memory (TensorFlow keeps several copies of a frozen graph's constants). For
fine-tuning, or serving with TF Serving or `hub.load`, use the model itself
or its SavedModel; for lean CPU serving, TFLite (`export.to_tflite`).
Measured speed and memory: docs/inference.md and `benchmarks/results/`.
"""

from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf

from mobilebert_tf import _compat
from mobilebert_tf.encoder import ENCODER_INPUTS

ENCODER_OUTPUTS = ("sequence_output", "pooled_output")


class FrozenModel:
  """A model's inference pass (`training=False`) with its weights as constants.

  Build one with `freeze_for_inference`. Calling it takes the model's input
  dict (any integer arrays or tensors of the traced shapes) and returns the
  selected outputs.

  Example:

      encoder = mobilebert_tf.build_encoder(config)  # then restore weights
      frozen = freeze_for_inference(encoder)
      outputs = frozen(dict(input_word_ids=ids, input_mask=mask,
                            input_type_ids=types))
      outputs["sequence_output"]  # [batch, seq, hidden]
  """

  def __init__(self, function, input_specs: Mapping[str, tf.TensorSpec],
               output_structure):
    self._function = function
    self._input_specs = dict(input_specs)
    self._output_structure = output_structure

  @property
  def input_specs(self) -> Dict[str, tf.TensorSpec]:
    """The traced inputs: name -> `tf.TensorSpec`."""
    return dict(self._input_specs)

  def __call__(self, inputs: Mapping[str, object]):
    """Runs the frozen pass.

    Args:
      inputs: dict with exactly the names of `input_specs`.

    Returns:
      The selected outputs, structured as the model returns them.

    Raises:
      ValueError: missing or unknown input names.
      TypeError: non-integer values for integer inputs.
    """
    if not isinstance(inputs, Mapping):
      raise TypeError("The frozen model takes a dict of inputs with the keys "
                      f"{sorted(self._input_specs)}. Received: "
                      f"{type(inputs).__name__}")
    missing = sorted(set(self._input_specs) - set(inputs))
    unknown = sorted(set(inputs) - set(self._input_specs))
    if missing or unknown:
      raise ValueError(
          f"The inputs must have exactly the keys {sorted(self._input_specs)}."
          f" Missing: {missing}; unknown: {unknown}")
    # The concrete function takes its inputs flat, in tf.nest's (sorted key)
    # order.
    flat = []
    for name in sorted(self._input_specs):
      spec = self._input_specs[name]
      value = tf.convert_to_tensor(inputs[name])
      if spec.dtype.is_integer and not value.dtype.is_integer:
        raise TypeError(f"`{name}` must hold integers ({spec.dtype.name}). "
                        f"Received dtype: {value.dtype.name}")
      flat.append(tf.cast(value, spec.dtype))
    outputs = self._function(*flat)
    return tf.nest.pack_sequence_as(self._output_structure,
                                    tf.nest.flatten(outputs))


def freeze_for_inference(
    model,
    output_keys: Optional[Sequence[str]] = ENCODER_OUTPUTS,
    input_specs: Optional[Mapping[str, tf.TensorSpec]] = None) -> FrozenModel:
  """Traces `model(inputs, training=False)` with its variables as constants.

  Args:
    model: a Keras model taking a dict of inputs, such as `MobileBERTEncoder`,
      a task head from `mobilebert_tf.heads`, or tf-models-official's
      encoder.
    output_keys: names to keep when the model returns a dict (default: the
      encoder's `sequence_output` and `pooled_output`; what is not returned is
      not computed), or None for all of them.
    input_specs: name -> `tf.TensorSpec`. Defaults to the encoder inputs
      (`input_word_ids`, `input_mask`, `input_type_ids`), int32
      `[None, None]`: any batch size and sequence length.

  Returns:
    A `FrozenModel`: a snapshot of the current weights.

  Raises:
    ValueError: `output_keys` names an output the model does not return.
  """
  if input_specs is None:
    input_specs = {name: tf.TensorSpec([None, None], tf.int32, name=name)
                   for name in ENCODER_INPUTS}

  def select(outputs):
    if output_keys is None or not isinstance(outputs, Mapping):
      return outputs
    unknown = sorted(set(output_keys) - set(outputs))
    if unknown:
      raise ValueError(f"`output_keys` {unknown} are not outputs of the model;"
                       f" it returns {sorted(outputs)}.")
    return {key: outputs[key] for key in output_keys}

  concrete = tf.function(
      lambda inputs: select(model(inputs, training=False))
  ).get_concrete_function(dict(input_specs))
  frozen = _compat.convert_variables_to_constants(concrete)
  return FrozenModel(frozen, input_specs, concrete.structured_outputs)
