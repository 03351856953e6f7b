"""Multi-head attention of a MobileBERT block, in two explicit layouts.

Numerics follow google-research `mobilebert/modeling.py`: scaled dot
products, the config's mask rule (`mask_scores`), softmax, dropout on the
probabilities, and an output projection. The sublayer names and kernel
shapes are those of Keras `MultiHeadAttention` (`_query_dense`
`[in, heads, head_size]`, ..., `_output_dense` `[heads, head_size, out]`),
which tf-models-official's checkpoints hold.

The layout is a constructor argument (`ATTENTION_LAYOUTS`), never ambient
state, so every trace of a model (training step, SavedModel, converter)
computes the same graph:

* "standard" (the default): 2-D projections, heads split and merged with
  transposes; what training, exports and converters trace.
* "heads_first": attention on `[heads, batch, seq, head_size]`, which a
  split and a stack produce without transposes; an opt-in inference layout
  (see docs/attention_layouts.md for when it pays off).

Both compute the same dot products and agree to float32 rounding.
"""

import math

import tensorflow as tf
import tf_keras

from mobilebert_tf.config import ATTENTION_MASK_RULES
from mobilebert_tf.layers import quantization
from mobilebert_tf.layers.initializers import clone_initializer

ATTENTION_LAYOUTS = ("standard", "heads_first")


def check_layout(attention_layout: str) -> str:
  """Returns `attention_layout` if valid.

  Raises:
    ValueError: not one of `ATTENTION_LAYOUTS`.
  """
  if attention_layout not in ATTENTION_LAYOUTS:
    raise ValueError(f"`attention_layout` must be one of {ATTENTION_LAYOUTS}. "
                     f"Received: attention_layout={attention_layout!r}")
  return attention_layout


def check_mask_rule(mask_rule: str) -> str:
  """Returns `mask_rule` if valid.

  Raises:
    ValueError: not one of `config.ATTENTION_MASK_RULES`.
  """
  if mask_rule not in ATTENTION_MASK_RULES:
    raise ValueError(
        f"`attention_mask_rule` must be one of {ATTENTION_MASK_RULES}. "
        f"Received: attention_mask_rule={mask_rule!r}")
  return mask_rule


def key_mask(attention_mask, dtype):
  """A 0/1 mask of `dtype` that broadcasts against `[batch, heads, q, k]`.

  A rank-2 or rank-3 mask is binarized (any nonzero value attends), so a
  mask holding 2 or 0.5 means the same as 1. A rank-4 mask is taken to be
  such a 0/1 mask already (what this function returns: the encoder makes it
  once, and each block reuses it) and is only cast to `dtype`.

  Args:
    attention_mask: `[batch, seq]` (per key), `[batch, from, to]`, or an
      already broadcastable 0/1 `[batch, 1 or heads, 1 or from, to]`.
    dtype: the dtype of the attention scores.

  Returns:
    `[batch, 1, 1, to]`, `[batch, 1, from, to]` or the rank-4 input's shape.
  """
  attention_mask = tf.convert_to_tensor(attention_mask)
  rank = attention_mask.shape.rank
  if rank == 4:
    return tf.cast(attention_mask, dtype)
  mask = tf.cast(tf.not_equal(attention_mask,
                              tf.zeros([], attention_mask.dtype)), dtype)
  if rank == 2:
    return mask[:, tf.newaxis, tf.newaxis, :]
  if rank == 3:
    return mask[:, tf.newaxis, :, :]
  raise ValueError("`attention_mask` must have rank 2, 3 or 4. Received "
                   f"shape: {attention_mask.shape}")


def _large_negative(dtype):
  """A finite score that softmax turns into weight 0 in `dtype`."""
  return -6e4 if tf.as_dtype(dtype) == tf.float16 else -1e9


def mask_scores(scores, mask, mask_rule: str):
  """Applies a mask rule to scaled attention scores (before the softmax).

  Args:
    scores: `[..., queries, keys]` scaled dot products.
    mask: 0/1 of the scores' dtype broadcastable to `scores` (`key_mask`),
      or None (no padding).
    mask_rule: one of `config.ATTENTION_MASK_RULES`.

  Returns:
    The masked scores: what the original's `get_all_attention_maps()`
    returns, and what attention distillation compares.
  """
  if mask is None:
    return scores
  padding = 1.0 - mask
  if mask_rule == "exclude":
    return scores + padding * tf.cast(_large_negative(scores.dtype),
                                      scores.dtype)
  if mask_rule == "additive":
    return scores + padding * tf.cast(-10000.0, scores.dtype)
  if mask_rule == "quantization_friendly":
    return scores * mask + padding * tf.cast(-6.0, scores.dtype)
  raise ValueError(check_mask_rule(mask_rule))


def dense_as_matmul(inputs, layer, quantize_kernel=False):
  """`layer` (Dense or EinsumDense) as one 2-D matmul (+ bias) on `[rows, width]`.

  With `quantize_kernel` the kernel is fake-quantized
  (`quantization.quantize_kernel`, QAT).
  """
  kernel = layer.kernel
  if kernel.shape.rank != 2:  # EinsumDense: [in, heads, size] -> [in, heads * size]
    kernel = tf.reshape(kernel, [kernel.shape[0], -1])
  if quantize_kernel:
    kernel = quantization.quantize_kernel(kernel)
  bias = layer.bias if layer.bias.shape.rank == 1 else tf.reshape(layer.bias,
                                                                  [-1])
  return tf.nn.bias_add(tf.matmul(inputs, tf.cast(kernel, inputs.dtype)),
                        tf.cast(bias, inputs.dtype))


class MobileBertAttention(tf_keras.layers.Layer):
  """Query/key/value/output projections and scaled dot-product attention.

  Query and key both read `query_key_input`; value reads `value_input` (the
  MobileBERT bottleneck variants differ only in what these are).

  Args:
    num_heads: int. Attention heads.
    head_size: int. Width of each head.
    output_size: int. Width of the output projection.
    query_width: int. Width of `query_key_input`.
    value_width: int. Width of `value_input`.
    initializer: weight initializer.
    dropout_rate: float. Dropout on the attention probabilities.
    mask_rule: str. One of `config.ATTENTION_MASK_RULES`. Defaults to
      "exclude".
    use_quantized_training: bool. 8-bit fake quantization as the original's
      QAT places it: the projection kernels, the raw scores, the masked
      scores (then clipped to `quantization.ATTENTION_SCORE_RANGE`) and the
      context (the output projection's input). The block quantizes the
      inputs (`MobileBertTransformer`). Needs the "quantization_friendly"
      mask rule. Defaults to False.

  Call args (`call`, the standard layout):
    query_key_input: `[batch * seq, query_width]`.
    value_input: `[batch * seq, value_width]`.
    mask: 0/1 `key_mask` broadcastable to `[batch, heads, seq, seq]`, or None.
    batch, seq: dynamic sizes.
    training: applies dropout to the attention probabilities.

  Returns:
    (`[batch * seq, output_size]`, probabilities `[batch, heads, seq, seq]`,
    masked scores `[batch, heads, seq, seq]`).
  """

  def __init__(self, num_heads, head_size, output_size, query_width,
               value_width, initializer, dropout_rate, mask_rule="exclude",
               use_quantized_training=False, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.head_size = head_size
    self.output_size = output_size
    self.query_width = query_width
    self.value_width = value_width
    self.initializer = tf_keras.initializers.get(initializer)
    self.dropout_rate = dropout_rate
    self.mask_rule = check_mask_rule(mask_rule)
    if use_quantized_training and mask_rule != "quantization_friendly":
      raise ValueError(
          "Quantization-aware attention needs "
          "mask_rule='quantization_friendly' (scores int8 can represent). "
          f"Received: mask_rule={mask_rule!r}")
    self.use_quantized_training = use_quantized_training
    # One moving-average range per quantized tensor, as in the original.
    self.quantizers = {
        name: quantization.ActivationQuantizer(name=f"{name}_quantizer")
        for name in ("scores", "masked_scores", "shifted_scores", "context")
    } if use_quantized_training else None

    def projection(name):
      return tf_keras.layers.EinsumDense(
          "abc,cde->abde", output_shape=[None, num_heads, head_size],
          bias_axes="de", kernel_initializer=clone_initializer(initializer),
          name=name)

    self._query_dense = projection("query")
    self._key_dense = projection("key")
    self._value_dense = projection("value")
    self._output_dense = tf_keras.layers.EinsumDense(
        "abcd,cde->abe", output_shape=[None, output_size], bias_axes="e",
        kernel_initializer=clone_initializer(initializer),
        name="attention_output")
    self._dropout_layer = tf_keras.layers.Dropout(dropout_rate)

  def build(self, input_shape=None):
    for layer, shape in (
        (self._query_dense, [None, None, self.query_width]),
        (self._key_dense, [None, None, self.query_width]),
        (self._value_dense, [None, None, self.value_width]),
        (self._output_dense, [None, None, self.num_heads, self.head_size])):
      with tf.name_scope(layer.name):
        layer.build(shape)
    super().build(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update(
        num_heads=self.num_heads, head_size=self.head_size,
        output_size=self.output_size, query_width=self.query_width,
        value_width=self.value_width,
        initializer=tf_keras.initializers.serialize(self.initializer),
        dropout_rate=self.dropout_rate, mask_rule=self.mask_rule,
        use_quantized_training=self.use_quantized_training)
    return config

  def _quantize(self, name, x, training):
    return quantization.quantize_activation(self.quantizers, name, x, training)

  def _project(self, inputs, dense):
    """A query/key/value projection as one 2-D matmul (QAT: its kernel)."""
    return dense_as_matmul(inputs, dense,
                           quantize_kernel=self.use_quantized_training)

  def _probabilities(self, dot_products, mask, training):
    """(masked scaled scores, probabilities, probabilities after dropout)."""
    dot_products = self._quantize("scores", dot_products, training)
    scores = dot_products * tf.cast(1.0 / math.sqrt(float(self.head_size)),
                                    dot_products.dtype)
    if self.use_quantized_training and mask is not None:
      # The original's QAT order: quantize the kept scores, then the sum
      # with the -6 of padded keys, then clip.
      scores = self._quantize("masked_scores", scores * mask, training)
      scores = self._quantize(
          "shifted_scores", scores + (1.0 - mask) * tf.cast(-6.0, scores.dtype),
          training)
      scores = tf.clip_by_value(scores, *quantization.ATTENTION_SCORE_RANGE)
    else:
      scores = mask_scores(scores, mask, self.mask_rule)
    probs = tf.nn.softmax(scores)
    return scores, probs, self._dropout_layer(probs, training=training)

  def _context(self, context, training):
    # The original quantizes the context and, again, the projection's input
    # (the same values, transposed, then rounded): one range serves both
    # here, as one range per tensor is what the converter lowers reliably.
    return self._quantize("context", context, training)

  def _output(self, context):
    """The output projection of `[rows, heads * head_size]` context."""
    kernel = tf.reshape(self._output_dense.kernel,
                        [self.num_heads * self.head_size, -1])
    if self.use_quantized_training:
      kernel = quantization.quantize_kernel(kernel)
    return tf.nn.bias_add(tf.matmul(context, tf.cast(kernel, context.dtype)),
                          tf.cast(self._output_dense.bias, context.dtype))

  # --- The standard layout. ---

  def call(self, query_key_input, value_input, mask, batch, seq,
           training=None):
    heads, size = self.num_heads, self.head_size

    def split_heads(x):  # [batch * seq, heads * size] -> [batch, heads, seq, size]
      return tf.transpose(tf.reshape(x, [batch, seq, heads, size]),
                          [0, 2, 1, 3])

    query = split_heads(self._project(query_key_input, self._query_dense))
    key = split_heads(self._project(query_key_input, self._key_dense))
    value = split_heads(self._project(value_input, self._value_dense))
    scores, probs, dropped = self._probabilities(
        tf.matmul(query, key, transpose_b=True), mask, training)
    # [batch, heads, seq, size]
    context = self._context(tf.matmul(dropped, value), training)
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]),
                         [batch * seq, heads * size])
    return self._output(context), probs, scores

  # --- The heads-first layout: steps the block drives part by part. ---

  def project_heads_first(self, query_key_input, value_input, batch, seq):
    """Query, key and value as `[heads, batch, seq, head_size]`, no transposes.

    Args:
      query_key_input: `[batch * seq, query_width]`.
      value_input: `[batch * seq, value_width]`.
      batch, seq: dynamic sizes.
    """
    heads, size = self.num_heads, self.head_size

    def project(inputs, dense):
      projected = self._project(inputs, dense)
      # A split and a stack are cheap copies; on oneDNN a transpose is not.
      projected = tf.stack(tf.split(projected, heads, axis=1), axis=0)
      return tf.reshape(projected, [heads, batch, seq, size])

    return (project(query_key_input, self._query_dense),
            project(query_key_input, self._key_dense),
            project(value_input, self._value_dense))

  @staticmethod
  def heads_first_mask(mask):
    """`[batch, 1 or heads, q, k]` -> `[1 or heads, batch, q, k]`."""
    if mask is None:
      return None
    if mask.shape[1] == 1:
      return mask[tf.newaxis, :, 0]
    return tf.transpose(mask, [1, 0, 2, 3])

  def attend_heads_first(self, query, key, value, mask, training):
    """Attention of some queries over all keys, heads-first.

    Args:
      query: `[heads, batch, queries, head_size]`.
      key, value: `[heads, batch, seq, head_size]`.
      mask: `[1 or heads, batch, 1 or queries, seq]` (`heads_first_mask`),
        or None.
      training: applies dropout to the probabilities.

    Returns:
      (`[batch * queries, output_size]`, probabilities and masked scores,
      each `[heads, batch, queries, seq]`).
    """
    heads, size = self.num_heads, self.head_size
    scores, probs, dropped = self._probabilities(
        tf.matmul(query, key, transpose_b=True), mask, training)
    # [heads, batch, queries, size]
    context = self._context(tf.matmul(dropped, value), training)
    # [batch * queries, heads * size], heads in the output kernel's order.
    # (Split + concat rather than unstack + concat: the TFLite converter
    # (TF 2.20) wrongly folds the latter into a reshape.)
    context = tf.split(tf.reshape(context, [heads, -1, size]), heads, axis=0)
    context = tf.reshape(tf.concat(context, axis=2), [-1, heads * size])
    return self._output(context), probs, scores
