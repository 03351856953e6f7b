"""Normalization layers: MobileBERT's `NoNorm` and layer normalization."""

import tf_keras

from mobilebert_tf.config import NORMALIZATION_TYPES
from mobilebert_tf.layers import quantization
from mobilebert_tf.layers.serialization import PACKAGE


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class NoNorm(tf_keras.layers.Layer):
  """Element-wise affine map `x * gamma + beta`: MobileBERT's "no_norm".

  The paper replaces layer normalization by this cheaper transformation; the
  TF1 checkpoints store it as `.../FakeLayerNorm/{gamma,beta}`.

  Args:
    use_quantized_training: bool. Fake-quantize the input, `gamma`, `beta`
      and the product `x * gamma` to 8 bits, each with a moving-average range
      (`quantization.ActivationQuantizer`), as the original's QAT does.
      Defaults to False.

  Call args:
    inputs: float tensor `[..., width]`.
    training: bool. Updates the quantization ranges under QAT.

  Returns:
    A tensor of the same shape.

  Example:
  >>> layer = NoNorm()
  >>> layer(tf.ones([2, 3])).shape
  TensorShape([2, 3])
  """

  def __init__(self, use_quantized_training=False, **kwargs):
    super().__init__(**kwargs)
    self.use_quantized_training = use_quantized_training
    self.quantizers = None
    if use_quantized_training:
      self.quantizers = {
          name: quantization.ActivationQuantizer(name=f"{name}_quantizer")
          for name in ("input", "beta", "gamma", "product")}

  def build(self, input_shape):
    width = input_shape[-1]
    self.beta = self.add_weight("beta", shape=[width], initializer="zeros")
    self.gamma = self.add_weight("gamma", shape=[width], initializer="ones")
    super().build(input_shape)

  def call(self, inputs, training=None):
    if not self.use_quantized_training:
      return inputs * self.gamma + self.beta

    def quantize(name, x):
      return quantization.quantize_activation(self.quantizers, name, x,
                                              training)

    # The original's order: input, offset, scale, then the product.
    product = quantize("product",
                       quantize("input", inputs) * quantize("gamma", self.gamma))
    return product + quantize("beta", self.beta)

  def get_config(self):
    config = super().get_config()
    config["use_quantized_training"] = self.use_quantized_training
    return config


def get_norm_layer(normalization_type, name=None, use_quantized_training=False):
  """The normalization layer for a `normalization_type`.

  Args:
    normalization_type: str. "no_norm" -> `NoNorm`; "layer_norm" -> layer
      normalization with epsilon 1e-12 (TF1 contrib's); "manual_layer_norm" ->
      epsilon 1e-6 (the original's hand-written variant).
    name: str. Layer name.
    use_quantized_training: bool. A fake-quantized `NoNorm` (QAT). Defaults
      to False.

  Raises:
    ValueError: unknown `normalization_type`, or QAT with a layer norm.
  """
  if normalization_type == "no_norm":
    return NoNorm(use_quantized_training=use_quantized_training, name=name)
  if use_quantized_training:
    raise ValueError("Quantization-aware training needs normalization_type="
                     f"'no_norm'. Received: {normalization_type!r}")
  if normalization_type in ("layer_norm", "manual_layer_norm"):
    epsilon = 1e-12 if normalization_type == "layer_norm" else 1e-6
    return tf_keras.layers.LayerNormalization(
        axis=-1, epsilon=epsilon, name=name)
  raise ValueError(f"`normalization_type` must be one of {NORMALIZATION_TYPES}."
                   f" Received: {normalization_type!r}")
