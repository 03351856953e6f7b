"""One MobileBERT block: bottlenecks, multi-head attention, stacked FFNs."""

import tensorflow as tf
import tf_keras

from mobilebert_tf.config import attention_input_widths
from mobilebert_tf.layers import quantization
from mobilebert_tf.layers.activations import get_activation
from mobilebert_tf.layers.attention import MobileBertAttention
from mobilebert_tf.layers.attention import check_layout
from mobilebert_tf.layers.attention import dense_as_matmul
from mobilebert_tf.layers.attention import key_mask
from mobilebert_tf.layers.initializers import clone_initializer
from mobilebert_tf.layers.initializers import default_initializer
from mobilebert_tf.layers.normalization import get_norm_layer
from mobilebert_tf.layers.serialization import PACKAGE


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class MobileBertTransformer(tf_keras.layers.Layer):
  """One MobileBERT block: bottlenecks, attention, stacked FFNs.

  With `use_bottleneck` (MobileBERT): the input `[batch, seq, hidden]` is
  projected to `intra_bottleneck_size`; attention reads the bottleneck
  (`use_bottleneck_attention`), or a second key/query-shared bottleneck with
  values from the block input (`key_query_shared_bottleneck`), or the block
  input; `num_feedforward_networks` FFNs follow, each with a residual and a
  norm; the output bottleneck projects back to `hidden_size` and adds the
  block input. Without `use_bottleneck` this is a BERT block with stacked
  FFNs.

  The object graph (attribute names, the `block_layers` dict of lists, the
  attention sublayer names) is tf-models-official's `MobileBertTransformer`'s,
  so object-based checkpoints interchange with it; code reads it through the
  named accessors. Every dense layer runs as one 2-D matmul on
  `[batch * seq, width]`.

  Args:
    hidden_size: int. Block input/output width. Defaults to 512.
    num_attention_heads: int. Defaults to 4.
    intermediate_size: int. FFN width. Defaults to 512.
    intermediate_act_fn: str. FFN activation, see `get_activation`. Defaults
      to "relu".
    hidden_dropout_prob: float. Defaults to 0.1.
    attention_probs_dropout_prob: float. Defaults to 0.1.
    intra_bottleneck_size: int. Bottleneck width. Defaults to 128.
    use_bottleneck_attention: bool. Defaults to False.
    key_query_shared_bottleneck: bool. Defaults to True.
    num_feedforward_networks: int. Defaults to 4.
    normalization_type: str. Defaults to "no_norm".
    initializer: weight initializer. Defaults to truncated normal, 0.02.
    use_bottleneck: bool. Defaults to True.
    attention_mask_rule: str. How padded keys are left out, one of
      `config.ATTENTION_MASK_RULES`. Defaults to "exclude".
    attention_layout: str. "standard" (default: one chain of ops, heads split
      by transposes; what training, exports and converters trace) or
      "heads_first" (an inference layout: heads-first attention without
      transposes, the block run as two independent chains over the two
      halves of the sequence outside training; same results to float32
      rounding). See `attention.ATTENTION_LAYOUTS`.
    use_quantized_training: bool. 8-bit fake quantization where the
      original's QAT places it: every dense layer's input (a moving-average
      range per tensor) and kernel, attention (`MobileBertAttention`) and
      every `NoNorm`. Needs "no_norm", a relu/relu6 activation and the
      "quantization_friendly" mask rule. Defaults to False.

  Call args:
    input_tensor: `[batch, seq, hidden_size]`.
    attention_mask: `[batch, seq]` or `[batch, seq, seq]` (nonzero = attend,
      0 = padding; binarized), or a broadcastable rank-4 0/1 mask
      `[batch, 1 or heads, 1 or seq, seq]` (used as it is: `key_mask`), or
      None.
    return_attention_scores: bool. Also return the attention probabilities
      `[batch, heads, seq, seq]`.
    return_attention_logits: bool. Also return the masked pre-softmax scores
      `[batch, heads, seq, seq]` (the original's attention maps).
    training: bool. Applies dropout when True.

  Returns:
    `[batch, seq, hidden_size]`; with either flag a tuple of it and the
    requested tensors, probabilities first.

  Example:
  >>> block = MobileBertTransformer(hidden_size=32, intermediate_size=32,
  ...     intra_bottleneck_size=16, num_feedforward_networks=2)
  >>> block(tf.ones([2, 5, 32]), tf.ones([2, 5], tf.int32)).shape
  TensorShape([2, 5, 32])
  """

  def __init__(self,
               hidden_size=512,
               num_attention_heads=4,
               intermediate_size=512,
               intermediate_act_fn="relu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               intra_bottleneck_size=128,
               use_bottleneck_attention=False,
               key_query_shared_bottleneck=True,
               num_feedforward_networks=4,
               normalization_type="no_norm",
               initializer=None,
               use_bottleneck=True,
               attention_mask_rule="exclude",
               attention_layout="standard",
               use_quantized_training=False,
               **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.intermediate_act_fn = intermediate_act_fn
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.intra_bottleneck_size = intra_bottleneck_size
    self.use_bottleneck_attention = use_bottleneck_attention
    self.key_query_shared_bottleneck = key_query_shared_bottleneck
    self.num_feedforward_networks = num_feedforward_networks
    self.normalization_type = normalization_type
    self.initializer = tf_keras.initializers.get(
        initializer or default_initializer())
    self.use_bottleneck = use_bottleneck
    self.attention_mask_rule = attention_mask_rule
    self.attention_layout = check_layout(attention_layout)
    self._activation = get_activation(intermediate_act_fn)
    if use_quantized_training and intermediate_act_fn.lower() not in (
        "relu", "relu6"):
      raise ValueError(
          "Quantization-aware training needs intermediate_act_fn 'relu' or "
          f"'relu6'. Received: {intermediate_act_fn!r}")
    self.use_quantized_training = use_quantized_training

    width = intra_bottleneck_size if use_bottleneck else hidden_size
    if width % num_attention_heads:
      name = "intra_bottleneck_size" if use_bottleneck else "hidden_size"
      raise ValueError(f"`{name}` ({width}) must be divisible by "
                       f"`num_attention_heads` ({num_attention_heads}).")
    self._width = width
    query_width, value_width = attention_input_widths(
        hidden_size, intra_bottleneck_size, use_bottleneck,
        use_bottleneck_attention, key_query_shared_bottleneck)

    def dense(units, name):
      return tf_keras.layers.Dense(
          units, kernel_initializer=clone_initializer(self.initializer),
          name=name)

    def norm(name):
      return get_norm_layer(normalization_type, name,
                            use_quantized_training=use_quantized_training)

    # The dict-of-lists layout is tf-models-official's object graph; read it
    # through the properties below.
    self.block_layers = {}
    if use_bottleneck:
      self.block_layers["bottleneck_input"] = [
          dense(width, "bottleneck_input/dense"),
          norm("bottleneck_input/norm")]
      if key_query_shared_bottleneck and not use_bottleneck_attention:
        self.block_layers["kq_shared_bottleneck"] = [
            dense(width, "kq_shared_bottleneck/dense"),
            norm("kq_shared_bottleneck/norm")]
    attention = MobileBertAttention(
        num_attention_heads, width // num_attention_heads, width,
        query_width, value_width, self.initializer,
        attention_probs_dropout_prob, mask_rule=attention_mask_rule,
        use_quantized_training=use_quantized_training, name="attention")
    self.block_layers["attention"] = [attention, norm("attention/norm")]
    self.block_layers["ffn"] = []
    for i in range(num_feedforward_networks):
      self.block_layers["ffn"].append([
          dense(intermediate_size, f"ffn_layer_{i}/intermediate_dense"),
          dense(width, f"ffn_layer_{i}/output_dense"),
          norm(f"ffn_layer_{i}/norm")])
    if use_bottleneck:
      self.block_layers["bottleneck_output"] = [
          dense(hidden_size, "bottleneck_output/dense"),
          tf_keras.layers.Dropout(hidden_dropout_prob,
                                  name="bottleneck_output/dropout"),
          norm("bottleneck_output/norm")]
    self._hidden_dropout = tf_keras.layers.Dropout(hidden_dropout_prob)
    # QAT: a moving-average range for each tensor a dense layer reads. The
    # original gives each dense layer its own, but where layers share an
    # input those ranges see the same statistics and stay equal; one range
    # per tensor is what the TFLite converter can lower.
    self.input_quantizers = None
    if use_quantized_training:
      names = ["block_input"]
      if use_bottleneck and use_bottleneck_attention:
        names.append("bottleneck_input")
      elif use_bottleneck and key_query_shared_bottleneck:
        names.append("kq_shared_bottleneck")
      for i in range(num_feedforward_networks):
        names += [f"ffn_layer_{i}/intermediate_dense",
                  f"ffn_layer_{i}/output_dense"]
      if use_bottleneck:
        names.append("bottleneck_output/dense")
      self.input_quantizers = {
          name: quantization.ActivationQuantizer(
              name=f"{name}/input_quantizer") for name in names}

  def _quantize(self, name, inputs, training):
    return quantization.quantize_activation(self.input_quantizers, name,
                                            inputs, training)

  def _dense(self, inputs, layer):
    """A dense sublayer as one 2-D matmul; its kernel fake-quantized (QAT)."""
    return dense_as_matmul(inputs, layer,
                           quantize_kernel=self.use_quantized_training)

  def _sublayer_input_widths(self):
    """(layer, input width) of every sublayer with weights."""
    width, hidden = self._width, self.hidden_size
    result = []
    if self.use_bottleneck:
      result += [(layer, hidden) for layer in self.bottleneck_input]
      result[-1] = (self.bottleneck_input[1], width)
      if self.kq_shared_bottleneck:
        result += [(self.kq_shared_bottleneck[0], hidden),
                   (self.kq_shared_bottleneck[1], width)]
    result += [(self.attention, None), (self.attention_norm, width)]
    for intermediate, output, norm in self.feedforward_networks:
      result += [(intermediate, width), (output, self.intermediate_size),
                 (norm, width)]
    if self.use_bottleneck:
      output_dense, output_norm = self.bottleneck_output
      result += [(output_dense, width), (output_norm, hidden)]
    return result

  def build(self, input_shape):
    # Each sublayer under its own name scope, so its variables are named
    # after it (`.../ffn_layer_0/intermediate_dense/kernel`).
    for layer, input_width in self._sublayer_input_widths():
      with tf.name_scope(layer.name):
        layer.build(None if input_width is None else [None, input_width])
    super().build(input_shape)

  # Named accessors over the checkpoint layout.
  @property
  def bottleneck_input(self):
    """(dense, norm) of the input bottleneck, or None."""
    return tuple(self.block_layers.get("bottleneck_input", ())) or None

  @property
  def kq_shared_bottleneck(self):
    """(dense, norm) of the key/query-shared bottleneck, or None."""
    return tuple(self.block_layers.get("kq_shared_bottleneck", ())) or None

  @property
  def attention(self):
    """The `MobileBertAttention` layer (`_query_dense`, ..., `_output_dense`)."""
    return self.block_layers["attention"][0]

  @property
  def attention_norm(self):
    return self.block_layers["attention"][1]

  @property
  def feedforward_networks(self):
    """[(intermediate_dense, output_dense, norm), ...] in order."""
    return [tuple(ffn) for ffn in self.block_layers["ffn"]]

  @property
  def bottleneck_output(self):
    """(dense, norm) of the output bottleneck, or None."""
    layers = self.block_layers.get("bottleneck_output")
    return (layers[0], layers[2]) if layers else None

  def call(self, input_tensor, attention_mask=None,
           return_attention_scores=False, return_attention_logits=False,
           training=None):
    if input_tensor.shape[-1] != self.hidden_size:
      raise ValueError(
          f"The input width ({input_tensor.shape[-1]}) must equal "
          f"`hidden_size` ({self.hidden_size}).")
    shape = tf.shape(input_tensor)
    batch, seq = shape[0], shape[1]
    mask = (None if attention_mask is None
            else key_mask(attention_mask, self.compute_dtype))
    # Two chains pay off for inference latency at small batches; a training
    # step (large batches, a gradient graph twice the size) runs one.
    if self.attention_layout == "heads_first" and training is not True:
      output, probs, scores = self._call_in_two_parts(input_tensor, mask,
                                                      batch, seq, training)
    elif self.attention_layout == "heads_first":
      output, probs, scores = self._call_heads_first(input_tensor, mask,
                                                     batch, seq, training)
    else:
      block_input = tf.reshape(input_tensor, [-1, self.hidden_size])
      layer_input, query_key_input, value_input = self._attention_inputs(
          block_input, training)
      attention_output, probs, scores = self.attention(
          query_key_input, value_input, mask, batch, seq, training=training)
      output = self._after_attention(attention_output, layer_input,
                                     block_input, training)
      output = tf.reshape(output, [batch, seq, self.hidden_size])
    extra = []
    if return_attention_scores:
      extra.append(probs)
    if return_attention_logits:
      extra.append(scores)
    return (output, *extra) if extra else output

  def _call_heads_first(self, input_tensor, mask, batch, seq, training):
    """The heads-first layout as one chain (its training step)."""
    attention = self.attention
    block_input = tf.reshape(input_tensor, [-1, self.hidden_size])
    layer_input, query_key_input, value_input = self._attention_inputs(
        block_input, training)
    query, key, value = attention.project_heads_first(
        query_key_input, value_input, batch, seq)
    attention_output, probs, scores = attention.attend_heads_first(
        query, key, value, attention.heads_first_mask(mask), training)
    output = self._after_attention(attention_output, layer_input, block_input,
                                   training)
    output = tf.reshape(output, [batch, seq, self.hidden_size])
    # [heads, batch, seq, seq] -> [batch, heads, seq, seq]
    return (output, tf.transpose(probs, [1, 0, 2, 3]),
            tf.transpose(scores, [1, 0, 2, 3]))

  def _call_in_two_parts(self, input_tensor, mask, batch, seq, training):
    """The block on the two halves of the sequence, as two independent chains.

    Only attention needs the whole sequence (every query reads every key and
    value); everything else is per token. Two chains of small ops let
    TensorFlow's executor keep two cores busy where one chain leaves them
    waiting (see docs/attention_layouts.md).

    Returns:
      (`[batch, seq, hidden_size]`, probabilities, masked scores, each
      `[batch, heads, seq, seq]`).
    """
    attention = self.attention
    lengths = [seq // 2, seq - seq // 2]
    parts = tf.split(input_tensor, tf.stack(lengths), axis=1, num=2)
    prepared = []
    for part, length in zip(parts, lengths):
      block_input = tf.reshape(part, [-1, self.hidden_size])
      layer_input, query_key_input, value_input = self._attention_inputs(
          block_input, training)
      query, key, value = attention.project_heads_first(
          query_key_input, value_input, batch, length)
      prepared.append((block_input, layer_input, query, key, value))
    key = tf.concat([p[3] for p in prepared], axis=2)
    value = tf.concat([p[4] for p in prepared], axis=2)
    mask = attention.heads_first_mask(mask)
    part_masks = [mask, mask]
    if mask is not None and mask.shape[2] != 1:
      if mask.shape[2] is None:  # 1 or seq: make it seq
        mask = tf.broadcast_to(
            mask, tf.concat([tf.shape(mask)[:2], [seq, seq]], 0))
      part_masks = tf.split(mask, tf.stack(lengths), axis=2, num=2)

    outputs, probs, scores = [], [], []
    for (block_input, layer_input, query, _, _), part_mask, length in zip(
        prepared, part_masks, lengths):
      attention_output, part_probs, part_scores = attention.attend_heads_first(
          query, key, value, part_mask, training)
      layer_output = self._after_attention(attention_output, layer_input,
                                           block_input, training)
      outputs.append(
          tf.reshape(layer_output, [batch, length, self.hidden_size]))
      probs.append(part_probs)
      scores.append(part_scores)
    output = tf.concat(outputs, axis=1)
    output.set_shape(input_tensor.shape)
    # [heads, batch, seq, seq] -> [batch, heads, seq, seq]
    return (output, tf.transpose(tf.concat(probs, axis=2), [1, 0, 2, 3]),
            tf.transpose(tf.concat(scores, axis=2), [1, 0, 2, 3]))

  def _attention_inputs(self, block_input, training):
    """The bottlenecks before attention.

    Args:
      block_input: `[rows, hidden_size]`.
      training: bool.

    Returns:
      (layer_input: the residual around attention, query_key_input,
      value_input), each `[rows, width]`; under QAT the latter two are
      fake-quantized.
    """
    quantized_input = self._quantize("block_input", block_input, training)
    if not self.use_bottleneck:
      return block_input, quantized_input, quantized_input
    input_dense, input_norm = self.bottleneck_input
    layer_input = input_norm(self._dense(quantized_input, input_dense),
                             training=training)
    if self.use_bottleneck_attention:
      attention_input = self._quantize("bottleneck_input", layer_input,
                                       training)
      return layer_input, attention_input, attention_input
    if not self.key_query_shared_bottleneck:
      return layer_input, quantized_input, quantized_input
    kq_dense, kq_norm = self.kq_shared_bottleneck
    query_key_input = kq_norm(self._dense(quantized_input, kq_dense),
                              training=training)
    return (layer_input,
            self._quantize("kq_shared_bottleneck", query_key_input, training),
            quantized_input)

  def _after_attention(self, attention_output, layer_input, block_input,
                       training):
    """Residual + norm, the FFNs and the output bottleneck, on `[rows, ...]`."""
    if not self.use_bottleneck:
      attention_output = self._hidden_dropout(attention_output,
                                              training=training)
    layer_output = self.attention_norm(attention_output + layer_input,
                                       training=training)

    ffns = self.feedforward_networks
    for i, (intermediate, output, norm) in enumerate(ffns):
      hidden = self._dense(self._quantize(f"ffn_layer_{i}/intermediate_dense",
                                          layer_output, training),
                           intermediate)
      if self._activation is not None:
        hidden = self._activation(hidden)
      ffn_output = self._dense(
          self._quantize(f"ffn_layer_{i}/output_dense", hidden, training),
          output)
      if not self.use_bottleneck and i == len(ffns) - 1:
        ffn_output = self._hidden_dropout(ffn_output, training=training)
      layer_output = norm(ffn_output + layer_output, training=training)

    if self.use_bottleneck:
      output_dense, output_norm = self.bottleneck_output
      dropout = self.block_layers["bottleneck_output"][1]
      output_input = self._quantize("bottleneck_output/dense", layer_output,
                                    training)
      layer_output = dropout(self._dense(output_input, output_dense),
                             training=training)
      layer_output = output_norm(layer_output + block_input, training=training)
    return layer_output

  def get_config(self):
    config = super().get_config()
    config.update({
        "hidden_size": self.hidden_size,
        "num_attention_heads": self.num_attention_heads,
        "intermediate_size": self.intermediate_size,
        "intermediate_act_fn": self.intermediate_act_fn,
        "hidden_dropout_prob": self.hidden_dropout_prob,
        "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
        "intra_bottleneck_size": self.intra_bottleneck_size,
        "use_bottleneck_attention": self.use_bottleneck_attention,
        "key_query_shared_bottleneck": self.key_query_shared_bottleneck,
        "num_feedforward_networks": self.num_feedforward_networks,
        "normalization_type": self.normalization_type,
        "initializer": tf_keras.initializers.serialize(self.initializer),
        "use_bottleneck": self.use_bottleneck,
        "attention_mask_rule": self.attention_mask_rule,
        "attention_layout": self.attention_layout,
        "use_quantized_training": self.use_quantized_training,
    })
    return config
