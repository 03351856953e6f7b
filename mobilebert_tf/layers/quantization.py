"""8-bit fake quantization for quantization-aware training (QAT).

What google-research `mobilebert/modeling.py` does with
`use_quantized_training`: every quantized dense layer reads its input through
an activation quantizer and its kernel through a weight quantizer; attention
quantizes its raw scores, the masked scores and the context; `NoNorm`
quantizes its input, scale, offset and product. The TFLite converter reads
the learnt ranges from these ops and writes a full-integer model.

* Activations (`ActivationQuantizer`): asymmetric 8-bit ranges, the moving
  averages (decay 0.999, from [-6, 6]) of each training batch's min and max,
  widened to hold 0: the original's `MovingAvgQuantize`. `calibrate_ranges`
  sets them from real inputs before a fine-tuning starts.
* Weights (`quantize_kernel`): symmetric narrow-range 8-bit (zero point 0,
  levels -127..127, the TFLite int8 specification for weights), per tensor,
  from the kernel's current values: the original's `LastValueQuantize`.
  Per output channel would be finer, but TF 2.20's converter cannot lower
  it for fully connected layers: a per-channel fake-quantized `[in, out]`
  kernel fails with "'tfl.transpose' op has mismatched quantized axes of
  input and output" (the FULLY_CONNECTED kernel is `[out, in]`).

These are TensorFlow's `fake_quant_with_min_max_vars*` ops rather than
`tensorflow-model-optimization`: that library quantizes a Keras layer by
wrapping its `call` (`QuantizeWrapperV2`), which can reach neither the ops
inside a layer (attention scores, the NoNorm product) nor keep the object
graph that checkpoints interchange by.
"""

import re

import numpy as np
import tensorflow as tf
import tf_keras

from mobilebert_tf.layers.serialization import PACKAGE

NUM_BITS = 8
EMA_DECAY = 0.999
INITIAL_RANGE = (-6.0, 6.0)
# The original clips masked attention scores to this range under QAT: the
# softmax of anything below -6 is ~0.002, and 60 bounds the int8 step size.
ATTENTION_SCORE_RANGE = (-6.0, 60.0)
# The object-graph keys and variable names of the ranges (`quantizers/...`
# of attention and NoNorm, `input_quantizers/...` of a block; variables
# `.../<name>_quantizer/min`).
RANGE_KEY = re.compile(r"(^|/)(input_)?quantizers/")
RANGE_VARIABLE_NAME = re.compile(r"_quantizer/(min|max):\d+$")
# A kernel of zeros would give a zero range (a division by zero).
_MIN_WEIGHT_RANGE = 1e-8


def _is_training(training):
  """Whether `training` (None, a bool or a tensor) is True; None if unknown."""
  if training is None:
    return False
  if isinstance(training, bool):
    return training
  return tf.get_static_value(training)


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class ActivationQuantizer(tf_keras.layers.Layer):
  """Fake-quantizes a tensor to 8 bits within a moving-average range.

  In training each call moves `min`/`max` towards the batch's min and max
  (each widened to include 0) by `1 - EMA_DECAY`, then quantizes with the
  moved range; otherwise it quantizes with the stored range. Under
  `tf.distribute` the replicas' updates are averaged.

  Call args:
    inputs: a float tensor.
    training: bool. Update the range.

  Returns:
    `inputs` rounded to the 256 levels of `[min, max]` (straight-through
    gradient inside the range).

  Example:
  >>> quantizer = ActivationQuantizer()
  >>> float(quantizer(tf.constant([0.0, 3.0]))[1])  # a level of [-6, 6]
  3.0117647647857666
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    # A `_RangeObserver` while `calibrate_ranges` runs, else None.
    self._observer = None

  def build(self, input_shape):
    def range_end(name, value):
      return self.add_weight(
          name, shape=[], initializer=tf_keras.initializers.Constant(value),
          trainable=False, aggregation=tf.VariableAggregation.MEAN)

    self.min = range_end("min", INITIAL_RANGE[0])
    self.max = range_end("max", INITIAL_RANGE[1])
    super().build(input_shape)

  def call(self, inputs, training=None):
    static = _is_training(training)
    if static is None:  # A symbolic learning phase.
      return tf.cond(tf.cast(training, tf.bool),
                     lambda: self._quantize(inputs, update=True),
                     lambda: self._quantize(inputs, update=False))
    return self._quantize(inputs, update=bool(static))

  def _quantize(self, inputs, update):
    if self._observer is not None:  # calibrate_ranges: the float tensor.
      self._observer.add(inputs)
      return inputs
    minimum, maximum = self.min, self.max
    if update:
      batch = tf.cast(tf.stop_gradient(inputs), tf.float32)
      minimum = self.min.assign_sub(
          (self.min - tf.minimum(tf.reduce_min(batch), 0.0)) * (1 - EMA_DECAY))
      maximum = self.max.assign_sub(
          (self.max - tf.maximum(tf.reduce_max(batch), 0.0)) * (1 - EMA_DECAY))
    quantized = tf.quantization.fake_quant_with_min_max_vars(
        tf.cast(inputs, tf.float32), minimum, maximum, num_bits=NUM_BITS,
        narrow_range=False)
    return tf.cast(quantized, inputs.dtype)


class _RangeObserver:
  """The min and max (each widened to hold 0) of every batch a quantizer
  sees; a plain object, so the layer does not track it."""

  def __init__(self):
    self.minima, self.maxima = [], []

  def add(self, inputs):
    batch = tf.cast(inputs, tf.float32)
    self.minima.append(float(tf.minimum(tf.reduce_min(batch), 0.0)))
    self.maxima.append(float(tf.maximum(tf.reduce_max(batch), 0.0)))


def calibrate_ranges(model, batches) -> int:
  """Sets every activation range of a QAT model from real inputs.

  The moving averages start at [-6, 6], as the original's, and move 0.1%
  of the way per training step: a fine-tuning of a few hundred steps ends
  far from the activations' ranges (docs/tflite.md: the demo classifier's
  QAT fine-tuning ends 0.4 points above float with calibrated ranges, 2.3
  below without). So before fine-tuning each range is set to the mean,
  over `batches`, of the batch's min and max: where the moving average
  tends to. Only the ranges' initial values change; the model computes
  what the original's QAT computes.

  The model runs eagerly in inference mode, each quantizer passing its
  input through unquantized: the ranges of the float model's activations,
  as post-training calibration sees them. A quantizer whose input was 0
  on every batch (an offset still at its initial zeros) keeps its range.

  Args:
    model: a Keras model or layer with `ActivationQuantizer`s (a config's
      `for_quantization_aware_training()`).
    batches: iterable of the model's inputs, a few training batches.

  Returns:
    The number of ranges set.

  Raises:
    ValueError: the model has no `ActivationQuantizer`, or `batches` is
      empty.
    RuntimeError: called inside a `tf.function`.
  """
  if not tf.executing_eagerly():
    raise RuntimeError("calibrate_ranges runs eagerly; call it outside any "
                       "tf.function")
  quantizers = [m for m in model.submodules
                if isinstance(m, ActivationQuantizer)]
  if not quantizers:
    raise ValueError(
        f"{model.name} has no ActivationQuantizer: calibrate_ranges is for a "
        "quantization-aware model (config.for_quantization_aware_training())")
  for quantizer in quantizers:
    quantizer._observer = _RangeObserver()  # pylint: disable=protected-access
  count = 0
  try:
    for batch in batches:
      model(batch, training=False)
      count += 1
  finally:
    observers = [q._observer for q in quantizers]  # pylint: disable=protected-access
    for quantizer in quantizers:
      quantizer._observer = None  # pylint: disable=protected-access
  if not count:
    raise ValueError("calibrate_ranges needs at least one batch")
  calibrated = 0
  for quantizer, observer in zip(quantizers, observers):
    if not observer.minima:  # Not on the path of these inputs.
      continue
    minimum, maximum = np.mean(observer.minima), np.mean(observer.maxima)
    if maximum > minimum:
      quantizer.min.assign(minimum)
      quantizer.max.assign(maximum)
      calibrated += 1
  return calibrated


def quantize_activation(quantizers, name, inputs, training):
  """`inputs` through `quantizers[name]`, or as they are without QAT.

  Args:
    quantizers: a dict of `ActivationQuantizer`s, or None (no QAT).
    name: the key of the tensor's range.
    inputs: the tensor.
    training: bool. Updates the range.
  """
  if quantizers is None:
    return inputs
  return quantizers[name](inputs, training=training)


def quantize_kernel(kernel):
  """Fake-quantizes a kernel: 8 bits, symmetric, narrow range, per tensor.

  The range is `[-r, r]` with `r` the kernel's largest absolute value, so
  zero is exactly representable and the integer kernel is
  `round(w * 127 / r)`. The range is a constant of the step (no gradient),
  as the original's last-value range.
  """
  dtype = kernel.dtype
  kernel = tf.cast(kernel, tf.float32)
  limit = tf.stop_gradient(
      tf.maximum(tf.reduce_max(tf.abs(kernel)), _MIN_WEIGHT_RANGE))
  quantized = tf.quantization.fake_quant_with_min_max_vars(
      kernel, -limit, limit, num_bits=NUM_BITS, narrow_range=True)
  return tf.cast(quantized, dtype)
