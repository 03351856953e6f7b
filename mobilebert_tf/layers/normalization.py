"""Normalization layers: MobileBERT's `NoNorm` and layer normalization."""

import tf_keras

from mobilebert_tf.config import NORMALIZATION_TYPES

PACKAGE = "MobileBertTF"


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class NoNorm(tf_keras.layers.Layer):
  """Element-wise affine map `x * gamma + beta`: MobileBERT's "no_norm".

  The paper replaces layer normalization by this cheaper transformation; the
  TF1 checkpoints store it as `.../FakeLayerNorm/{gamma,beta}`.

  Call args:
    inputs: float tensor `[..., width]`.

  Returns:
    A tensor of the same shape.

  Example:
  >>> layer = NoNorm()
  >>> layer(tf.ones([2, 3])).shape
  TensorShape([2, 3])
  """

  def build(self, input_shape):
    width = input_shape[-1]
    self.beta = self.add_weight("beta", shape=[width], initializer="zeros")
    self.gamma = self.add_weight("gamma", shape=[width], initializer="ones")
    super().build(input_shape)

  def call(self, inputs):
    return inputs * self.gamma + self.beta


def get_norm_layer(normalization_type, name=None):
  """The normalization layer for a `normalization_type`.

  Args:
    normalization_type: str. "no_norm" -> `NoNorm`; "layer_norm" -> layer
      normalization with epsilon 1e-12 (TF1 contrib's); "manual_layer_norm" ->
      epsilon 1e-6 (the original's hand-written variant).
    name: str. Layer name.

  Raises:
    ValueError: unknown `normalization_type`.
  """
  if normalization_type == "no_norm":
    return NoNorm(name=name)
  if normalization_type in ("layer_norm", "manual_layer_norm"):
    epsilon = 1e-12 if normalization_type == "layer_norm" else 1e-6
    return tf_keras.layers.LayerNormalization(
        axis=-1, epsilon=epsilon, name=name)
  raise ValueError(f"`normalization_type` must be one of {NORMALIZATION_TYPES}."
                   f" Received: {normalization_type!r}")
