"""MobileBERT Keras layers: normalization, embedding, transformer block, MLM head.

Numerics follow google-research `mobilebert/modeling.py` (TF1). The object
graph (attribute names, the `block_layers` dict of lists, the Keras
`MultiHeadAttention` sublayer names) follows tf-models-official's
`official.nlp.modeling.layers.mobile_bert_layers`, so object-based checkpoints
interchange with it in both directions. The structure lives in the
constructors; the forward passes read it through named accessors.

The forward passes are written for speed on CPU, where a MobileBERT block is
mostly small matmuls and the number of graph ops matters as much as their
FLOPs. Every dense layer runs as one 2-D matmul (+ bias) on
`[batch * seq, width]`. Attention is traced in one of two layouts, chosen at
trace time (`standard_attention`):

* "heads-first" (default, for TensorFlow's graph executor): attention runs on
  `[heads, batch, seq, head_size]`, which a split and a stack (cheap copies)
  produce from the 2-D projections, and which a split and a concat turn
  back; no transposes, no per-call weight concatenation. With oneDNN (TF's
  default CPU kernels) a transpose of a 64 KB activation costs ~40 us and a
  small batched matmul ~40 us of fixed overhead, as much as a 4 MFLOP matmul;
  Keras `MultiHeadAttention` (and tf-models-official) spends four transposes
  or einsum relayouts per block, and per-call weight concatenation costs more
  than the second matmul it saves. Measured at batch 1 x seq 128 on 2 cores,
  this layout cut the encoder's time by 15-20% against the standard one.
  For inference, in this layout a block also runs as two independent chains
  of ops, one per half of the sequence, joined only where attention reads
  all keys and values (`MobileBertTransformer._call_in_two_parts`): with one
  chain the cores idle between the small ops. Measured at batch 1 x seq 128
  on 2 cores (interleaved medians, one process): 37.1 -> 33.2 ms per
  sequence with variables, 29.2 -> 25.0 ms with the weights frozen
  (`freeze_for_inference`); at batch 8 no change.
* "standard" (under XLA, detected automatically, and for converters such as
  TFLite): heads are split with transposes, as in Keras `MultiHeadAttention`.
  XLA fuses the transposes into neighbouring copies; TFLite needs plain
  matmuls to emit (and quantize) FULLY_CONNECTED ops. For converters,
  projections of one input also share a matmul over concatenated kernels,
  which they constant-fold; under XLA the concatenation would copy the
  weights on every call.

Both layouts compute the same dot products; they agree to float32 rounding.
"""

import contextlib
import math
import threading

import tensorflow as tf
import tf_keras

from mobilebert_tf.config import ACTIVATIONS
from mobilebert_tf.config import NORMALIZATION_TYPES

_PACKAGE = "MobileBertTF"


def gelu(x):
  """GELU, tanh approximation: the original MobileBERT's `gelu`."""
  return tf.nn.gelu(x, approximate=True)


_ACTIVATION_FNS = {
    "linear": None,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "gelu": gelu,
    "tanh": tf.tanh,
}


def get_activation(name):
  """Maps an original `hidden_act` string to a function (None for linear).

  Raises:
    ValueError: `name` is not one of `config.ACTIVATIONS`.
  """
  if not isinstance(name, str) or name.lower() not in _ACTIVATION_FNS:
    raise ValueError(f"`hidden_act` must be one of {ACTIVATIONS}. "
                     f"Received: {name!r}")
  return _ACTIVATION_FNS[name.lower()]


def _initializer(initializer):
  """A fresh initializer instance, so no two weights share one."""
  return tf_keras.initializers.get(
      tf_keras.initializers.serialize(tf_keras.initializers.get(initializer)))


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class NoNorm(tf_keras.layers.Layer):
  """Element-wise affine map `x * gamma + beta`: MobileBERT's "no_norm".

  The paper replaces layer normalization by this cheaper transformation; the
  TF1 checkpoints store it as `.../FakeLayerNorm/{gamma,beta}`.

  Call args:
    inputs: float tensor `[..., width]`.

  Returns:
    A tensor of the same shape.
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


def _fused_dense(inputs, dense_layers):
  """Applies several `Dense`-style layers that read the same input as one matmul.

  Args:
    inputs: `[rows, width]`.
    dense_layers: layers with `kernel` `[width, ...]` and `bias`, built.

  Returns:
    A list with each layer's output `[rows, units_i]` (no activation).
  """
  kernels = [tf.reshape(d.kernel, [d.kernel.shape[0], -1]) for d in dense_layers]
  biases = [tf.reshape(d.bias, [-1]) for d in dense_layers]
  sizes = [k.shape[-1] for k in kernels]
  if len(dense_layers) == 1:
    return [tf.nn.bias_add(tf.matmul(inputs, kernels[0]), biases[0])]
  fused = tf.nn.bias_add(
      tf.matmul(inputs, tf.concat(kernels, axis=1)), tf.concat(biases, axis=0))
  # Equal parts as a plain Split: TFLite's XNNPACK delegate runs SPLIT but
  # not SPLIT_V, and each op it leaves out splits the delegated graph.
  return tf.split(fused, len(sizes) if len(set(sizes)) == 1 else sizes,
                  axis=1)


_LAYOUT = threading.local()


@contextlib.contextmanager
def standard_attention():
  """Traces attention in the "standard" layout within this context.

  Use it around tracing for converters that pattern-match plain matmuls, as
  `export.to_tflite` does; see the module docstring. Functions compiled with
  XLA (`jit_compile=True`) get the standard layout without it. Only tracing
  is affected: a function traced before keeps its layout.

  Example:

      with standard_attention():
        concrete = tf.function(encoder).get_concrete_function(specs)
  """
  previous = getattr(_LAYOUT, "standard", False)
  _LAYOUT.standard = True
  try:
    yield
  finally:
    _LAYOUT.standard = previous


def _attention_layout():
  """The layout of the call being traced: "converter", "xla" or "heads_first".

  "converter" and "xla" are both the standard layout; only converters get
  projections fused over concatenated kernels (constant-folded there; under
  XLA the concatenation is a copy of the weights per call, and separate dots
  measured faster).
  """
  if getattr(_LAYOUT, "standard", False):
    return "converter"
  if tf.__internal__.get_enclosing_xla_context() is not None:
    return "xla"
  return "heads_first"


def additive_attention_mask(input_mask, dtype):
  """`[batch, 1, 1, seq]` bias: 0 for real keys, a large negative for padding.

  The original TF1 code adds a constant (-6 or -10000) to padded keys; both
  peers (tf-models-official and transformers) drop padded keys completely, and
  so do we: softmax gives them weight 0 to float precision.

  Args:
    input_mask: `[batch, seq]` (1 real, 0 padding) or `[batch, from, to]`.
    dtype: compute dtype of the attention scores.
  """
  mask = tf.cast(input_mask, dtype)
  if mask.shape.rank == 2:
    mask = mask[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, 1, to]
  else:
    mask = mask[:, tf.newaxis, :, :]  # [batch, 1, from, to]
  large_negative = -1e9 if tf.as_dtype(dtype) != tf.float16 else -6e4
  return (1.0 - mask) * large_negative


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertEmbedding(tf_keras.layers.Layer):
  """Word (optionally trigram) + position + token-type embeddings.

  Looks up `[batch, seq, word_embed_size]` word embeddings; with
  `trigram_input` concatenates each position with its right and left
  neighbours' embeddings (the paper's kernel-3 convolution, zero beyond the
  ends) to `3 * word_embed_size`; projects to `output_embed_size` when the
  widths differ; adds token-type and position embeddings; normalizes; drops
  out.

  Args:
    word_vocab_size: int. Number of word pieces.
    word_embed_size: int. Word embedding width.
    type_vocab_size: int. Number of token types.
    output_embed_size: int. Output width (the encoder's hidden size).
    max_sequence_length: int. Number of position embeddings. Defaults to 512.
    normalization_type: str. See `get_norm_layer`. Defaults to "no_norm".
    initializer: initializer of all weights. Defaults to truncated normal with
      stddev 0.02.
    dropout_rate: float. Dropout on the output. Defaults to 0.1.
    trigram_input: bool. Concatenate neighbour embeddings. Defaults to True.
    validate_inputs: bool. Check ids against the vocabulary sizes and the
      sequence length against `max_sequence_length` at run time (an
      out-of-range id would otherwise give zeros on GPU). Defaults to True.

  Call args:
    input_word_ids: int32 `[batch, seq]`.
    input_type_ids: int32 `[batch, seq]` or None (all type 0).
    training: bool. Applies dropout when True.

  Returns:
    `[batch, seq, output_embed_size]`.
  """

  def __init__(self,
               word_vocab_size,
               word_embed_size,
               type_vocab_size,
               output_embed_size,
               max_sequence_length=512,
               normalization_type="no_norm",
               initializer=None,
               dropout_rate=0.1,
               trigram_input=True,
               validate_inputs=True,
               **kwargs):
    super().__init__(**kwargs)
    self.word_vocab_size = word_vocab_size
    self.word_embed_size = word_embed_size
    self.type_vocab_size = type_vocab_size
    self.output_embed_size = output_embed_size
    self.max_sequence_length = max_sequence_length
    self.normalization_type = normalization_type
    self.initializer = tf_keras.initializers.get(
        initializer or tf_keras.initializers.TruncatedNormal(stddev=0.02))
    self.dropout_rate = dropout_rate
    self.trigram_input = trigram_input
    self.validate_inputs = validate_inputs

    self.word_embedding = tf_keras.layers.Embedding(
        word_vocab_size, word_embed_size,
        embeddings_initializer=_initializer(self.initializer),
        name="word_embedding")
    self.type_embedding = tf_keras.layers.Embedding(
        type_vocab_size, output_embed_size,
        embeddings_initializer=_initializer(self.initializer),
        name="type_embedding")
    self.pos_embedding = tf_keras.layers.Embedding(
        max_sequence_length, output_embed_size,
        embeddings_initializer=_initializer(self.initializer),
        name="position_embedding")
    projected_width = word_embed_size * (3 if trigram_input else 1)
    if projected_width != output_embed_size or trigram_input:
      self.word_embedding_proj = tf_keras.layers.Dense(
          output_embed_size, kernel_initializer=_initializer(self.initializer),
          name="embedding_projection")
    else:
      self.word_embedding_proj = None
    self.layer_norm = get_norm_layer(normalization_type, "embedding_norm")
    self.dropout_layer = tf_keras.layers.Dropout(
        dropout_rate, name="embedding_dropout")

  def build(self, input_shape):
    for embedding in (self.word_embedding, self.type_embedding,
                      self.pos_embedding):
      embedding.build([None, None])
    if self.word_embedding_proj is not None:
      in_width = self.word_embed_size * (3 if self.trigram_input else 1)
      self.word_embedding_proj.build([None, in_width])
    self.layer_norm.build([None, None, self.output_embed_size])
    super().build(input_shape)

  def _check_ids(self, input_word_ids, input_type_ids):
    checks = [
        tf.debugging.assert_non_negative(
            input_word_ids, message="input_word_ids must be >= 0"),
        tf.debugging.assert_less(
            input_word_ids, tf.constant(self.word_vocab_size, tf.int32),
            message=(f"input_word_ids must be < vocab_size "
                     f"({self.word_vocab_size}); the ids do not come from this "
                     "model's vocabulary")),
        tf.debugging.assert_less_equal(
            tf.shape(input_word_ids)[1], self.max_sequence_length,
            message=(f"sequence length exceeds max_position_embeddings "
                     f"({self.max_sequence_length}); truncate the inputs")),
    ]
    if input_type_ids is not None:
      checks += [
          tf.debugging.assert_non_negative(
              input_type_ids, message="input_type_ids must be >= 0"),
          tf.debugging.assert_less(
              input_type_ids, tf.constant(self.type_vocab_size, tf.int32),
              message=(f"input_type_ids must be < type_vocab_size "
                       f"({self.type_vocab_size})")),
      ]
    return checks

  def call(self, input_word_ids, input_type_ids=None, training=None):
    seq_length = input_word_ids.shape[1]
    if seq_length is not None and seq_length > self.max_sequence_length:
      raise ValueError(
          f"Sequence length {seq_length} exceeds max_position_embeddings "
          f"({self.max_sequence_length}). Truncate the inputs.")
    checks = self._check_ids(input_word_ids, input_type_ids) if (
        self.validate_inputs) else []
    if checks:
      # Both lookups wait for the checks: an out-of-range id must fail with
      # its message, not with the gather's.
      with tf.control_dependencies(checks):
        input_word_ids = tf.identity(input_word_ids)
        if input_type_ids is not None:
          input_type_ids = tf.identity(input_type_ids)
    dtype = self.compute_dtype
    # [batch, seq, word_embed_size]
    words = tf.cast(tf.gather(self.word_embedding.embeddings, input_word_ids),
                    dtype)
    if self.trigram_input:
      # [next token, this token, previous token]: a kernel-3 convolution
      # written as a concat + dense, exactly as the TF1 checkpoints expect.
      words = tf.concat(
          [tf.pad(words[:, 1:], [[0, 0], [0, 1], [0, 0]]), words,
           tf.pad(words[:, :-1], [[0, 0], [1, 0], [0, 0]])], axis=2)
    if self.word_embedding_proj is not None:
      words = self.word_embedding_proj(words)  # [batch, seq, hidden]
    seq = tf.shape(input_word_ids)[1]
    output = words
    if input_type_ids is not None:
      output += tf.cast(
          tf.gather(self.type_embedding.embeddings, input_type_ids), dtype)
    output += tf.cast(self.pos_embedding.embeddings[tf.newaxis, :seq], dtype)
    output = self.layer_norm(output)
    return self.dropout_layer(output, training=training)

  def get_config(self):
    config = super().get_config()
    config.update({
        "word_vocab_size": self.word_vocab_size,
        "word_embed_size": self.word_embed_size,
        "type_vocab_size": self.type_vocab_size,
        "output_embed_size": self.output_embed_size,
        "max_sequence_length": self.max_sequence_length,
        "normalization_type": self.normalization_type,
        "initializer": tf_keras.initializers.serialize(self.initializer),
        "dropout_rate": self.dropout_rate,
        "trigram_input": self.trigram_input,
        "validate_inputs": self.validate_inputs,
    })
    return config


class _AttentionProjections(tf_keras.layers.Layer):
  """Query/key/value/output projections of multi-head attention.

  The sublayer names and kernel shapes are those of Keras `MultiHeadAttention`
  (`_query_dense` `[in, heads, head_size]`, ..., `_output_dense`
  `[heads, head_size, out]`), which tf-models-official's checkpoints hold.
  """

  def __init__(self, num_heads, head_size, output_size, query_width,
               value_width, initializer, dropout_rate, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.head_size = head_size

    def projection(name):
      return tf_keras.layers.EinsumDense(
          "abc,cde->abde", output_shape=[None, num_heads, head_size],
          bias_axes="de", kernel_initializer=_initializer(initializer),
          name=name)

    self._query_dense = projection("query")
    self._key_dense = projection("key")
    self._value_dense = projection("value")
    self._output_dense = tf_keras.layers.EinsumDense(
        "abcd,cde->abe", output_shape=[None, output_size], bias_axes="e",
        kernel_initializer=_initializer(initializer), name="attention_output")
    self._dropout_layer = tf_keras.layers.Dropout(dropout_rate)
    self._query_dense.build([None, None, query_width])
    self._key_dense.build([None, None, query_width])
    self._value_dense.build([None, None, value_width])
    self._output_dense.build([None, None, num_heads, head_size])
    self._config = dict(num_heads=num_heads, head_size=head_size,
                        output_size=output_size, query_width=query_width,
                        value_width=value_width, dropout_rate=dropout_rate,
                        initializer=tf_keras.initializers.serialize(
                            tf_keras.initializers.get(initializer)))

  def get_config(self):
    config = super().get_config()
    config.update(self._config)
    return config

  def call(self, query_key_input, value_input, mask_bias, batch, seq,
           training=None, return_scores=False):
    """Attention with query and key both read from `query_key_input`.

    Traced in the layout of `_attention_layout`; `MobileBertTransformer` also
    drives the heads-first steps (`project_heads_first`, `attend_heads_first`)
    itself, one part of the sequence at a time.

    Args:
      query_key_input: `[batch * seq, query_width]`.
      value_input: `[batch * seq, value_width]`.
      mask_bias: `[batch, 1, 1 or seq, seq]` additive mask, or None.
      batch, seq: dynamic sizes.
      training: applies dropout to the attention probabilities.
      return_scores: also return the probabilities `[batch, heads, seq, seq]`.

    Returns:
      `[batch * seq, output_size]` (and the probabilities).
    """
    layout = _attention_layout()
    if layout != "heads_first":
      output, probs = self._standard_attention(
          query_key_input, value_input, mask_bias, batch, seq, training,
          fuse=layout == "converter")
    else:
      query, key, value = self.project_heads_first(
          query_key_input, value_input, batch, seq)
      output, probs = self.attend_heads_first(
          query, key, value, self.heads_first_mask(mask_bias), training)
      if return_scores:
        probs = tf.transpose(probs, [1, 0, 2, 3])  # [batch, heads, seq, seq]
    return (output, probs) if return_scores else output

  def _masked_probs(self, scores, mask_bias, training):
    """Scaled, masked softmax of the scores (+dropout), any layout."""
    scores = scores * tf.cast(1.0 / math.sqrt(float(self.head_size)),
                              scores.dtype)
    if mask_bias is not None:
      scores += mask_bias
    probs = tf.nn.softmax(scores)
    return probs, self._dropout_layer(probs, training=training)

  def project_heads_first(self, query_key_input, value_input, batch, seq):
    """Query, key and value in the "heads-first" layout, no transposes.

    Args:
      query_key_input: `[batch * seq, query_width]`.
      value_input: `[batch * seq, value_width]`.
      batch, seq: dynamic sizes.

    Returns:
      (query, key, value), each `[heads, batch, seq, head_size]`.
    """
    heads, size = self.num_heads, self.head_size

    def project(inputs, dense):  # -> [heads, batch, seq, size]
      (projected,) = _fused_dense(inputs, [dense])
      # A split and a stack are cheap copies; a transpose is not (on oneDNN).
      projected = tf.stack(tf.split(projected, heads, axis=1), axis=0)
      return tf.reshape(projected, [heads, batch, seq, size])

    return (project(query_key_input, self._query_dense),
            project(query_key_input, self._key_dense),
            project(value_input, self._value_dense))

  @staticmethod
  def heads_first_mask(mask_bias):
    """`[batch, 1 or heads, from, to]` -> `[1 or heads, batch, from, to]`."""
    if mask_bias is None:
      return None
    if mask_bias.shape[1] == 1:
      return mask_bias[tf.newaxis, :, 0]
    return tf.transpose(mask_bias, [1, 0, 2, 3])

  def attend_heads_first(self, query, key, value, mask_bias, training):
    """Attention of some queries over all keys, heads-first.

    Args:
      query: `[heads, batch, queries, head_size]`.
      key, value: `[heads, batch, seq, head_size]`.
      mask_bias: `[1 or heads, batch, 1 or queries, seq]`, or None.
      training: applies dropout to the probabilities.

    Returns:
      (`[batch * queries, output_size]`, probabilities
      `[heads, batch, queries, seq]`).
    """
    heads, size = self.num_heads, self.head_size
    probs, probs_dropped = self._masked_probs(
        tf.matmul(query, key, transpose_b=True), mask_bias, training)
    context = tf.matmul(probs_dropped, value)  # [heads, batch, queries, size]
    # [batch * queries, heads * size], the heads in the output kernel's order.
    # (Split + concat rather than unstack + concat: the TFLite converter
    # (TF 2.20) wrongly folds the latter into a reshape.)
    context = tf.split(tf.reshape(context, [heads, -1, size]), heads, axis=0)
    context = tf.reshape(tf.concat(context, axis=2), [-1, heads * size])
    output = tf.nn.bias_add(
        tf.matmul(context,
                  tf.reshape(self._output_dense.kernel, [heads * size, -1])),
        self._output_dense.bias)
    return output, probs

  def _standard_attention(self, query_key_input, value_input, mask_bias,
                          batch, seq, training, fuse):
    """The "standard" layout: 2-D projections, heads split by transposes."""
    heads, size = self.num_heads, self.head_size
    if not fuse:
      query, key, value = [
          _fused_dense(x, [dense])[0] for x, dense in (
              (query_key_input, self._query_dense),
              (query_key_input, self._key_dense),
              (value_input, self._value_dense))]
    elif value_input is query_key_input:
      query, key, value = _fused_dense(
          query_key_input,
          [self._query_dense, self._key_dense, self._value_dense])
    else:
      query, key = _fused_dense(query_key_input,
                                [self._query_dense, self._key_dense])
      (value,) = _fused_dense(value_input, [self._value_dense])

    def split_heads(x):  # [batch * seq, heads * size] -> [batch, heads, seq, size]
      return tf.transpose(tf.reshape(x, [batch, seq, heads, size]), [0, 2, 1, 3])

    query, key, value = split_heads(query), split_heads(key), split_heads(value)
    # [batch, heads, seq, seq]
    probs, probs_dropped = self._masked_probs(
        tf.matmul(query, key, transpose_b=True), mask_bias, training)
    context = tf.matmul(probs_dropped, value)  # [batch, heads, seq, size]
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]),
                         [batch * seq, heads * size])
    output = tf.nn.bias_add(
        tf.matmul(context,
                  tf.reshape(self._output_dense.kernel, [heads * size, -1])),
        self._output_dense.bias)
    return output, probs


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertTransformer(tf_keras.layers.Layer):
  """One MobileBERT block: bottlenecks, attention, stacked FFNs.

  With `use_bottleneck` (MobileBERT): the input `[batch, seq, hidden]` is
  projected to `intra_bottleneck_size`; attention reads the bottleneck
  (`use_bottleneck_attention`), or a second key/query-shared bottleneck with
  values from the block input (`key_query_shared_bottleneck`), or the block
  input; `num_feedforward_networks` FFNs follow, each with a residual and a
  norm; the output bottleneck projects back to `hidden_size` and adds the block
  input. Without `use_bottleneck` this is a BERT block with stacked FFNs.

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

  Call args:
    input_tensor: `[batch, seq, hidden_size]`.
    attention_mask: `[batch, seq]` or `[batch, seq, seq]` of 1 (attend) and 0
      (padding), or None.
    return_attention_scores: bool. Also return `[batch, heads, seq, seq]`
      attention probabilities.
    training: bool. Applies dropout when True.

  Returns:
    `[batch, seq, hidden_size]` (and the attention probabilities).
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
        initializer or tf_keras.initializers.TruncatedNormal(stddev=0.02))
    self.use_bottleneck = use_bottleneck
    self._activation = get_activation(intermediate_act_fn)

    width = intra_bottleneck_size if use_bottleneck else hidden_size
    if width % num_attention_heads:
      name = "intra_bottleneck_size" if use_bottleneck else "hidden_size"
      raise ValueError(f"`{name}` ({width}) must be divisible by "
                       f"`num_attention_heads` ({num_attention_heads}).")
    self._width = width

    def dense(units, name, input_width):
      layer = tf_keras.layers.Dense(
          units, kernel_initializer=_initializer(self.initializer), name=name)
      layer.build([None, input_width])
      return layer

    def norm(name, input_width):
      layer = get_norm_layer(normalization_type, name)
      layer.build([None, input_width])
      return layer

    # The dict-of-lists layout is tf-models-official's object graph; read it
    # through the properties below.
    self.block_layers = {}
    if use_bottleneck:
      self.block_layers["bottleneck_input"] = [
          dense(width, "bottleneck_input/dense", hidden_size),
          norm("bottleneck_input/norm", width)]
      if key_query_shared_bottleneck and not use_bottleneck_attention:
        self.block_layers["kq_shared_bottleneck"] = [
            dense(width, "kq_shared_bottleneck/dense", hidden_size),
            norm("kq_shared_bottleneck/norm", width)]
    query_width = width if (use_bottleneck and (
        use_bottleneck_attention or key_query_shared_bottleneck)) else hidden_size
    value_width = width if (use_bottleneck and
                            use_bottleneck_attention) else hidden_size
    self.block_layers["attention"] = [
        _AttentionProjections(
            num_attention_heads, width // num_attention_heads, width,
            query_width, value_width, self.initializer,
            attention_probs_dropout_prob, name="attention"),
        norm("attention/norm", width)]
    self.block_layers["ffn"] = []
    for i in range(num_feedforward_networks):
      self.block_layers["ffn"].append([
          dense(intermediate_size, f"ffn_layer_{i}/intermediate_dense", width),
          dense(width, f"ffn_layer_{i}/output_dense", intermediate_size),
          norm(f"ffn_layer_{i}/norm", width)])
    if use_bottleneck:
      self.block_layers["bottleneck_output"] = [
          dense(hidden_size, "bottleneck_output/dense", width),
          tf_keras.layers.Dropout(hidden_dropout_prob,
                                  name="bottleneck_output/dropout"),
          norm("bottleneck_output/norm", hidden_size)]
    self._hidden_dropout = tf_keras.layers.Dropout(hidden_dropout_prob)

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
    """The attention projections (`_query_dense`, ..., `_output_dense`)."""
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
           return_attention_scores=False, training=None):
    if input_tensor.shape[-1] != self.hidden_size:
      raise ValueError(
          f"The input width ({input_tensor.shape[-1]}) must equal "
          f"`hidden_size` ({self.hidden_size}).")
    shape = tf.shape(input_tensor)
    batch, seq = shape[0], shape[1]
    mask_bias = None
    if attention_mask is not None:
      attention_mask = tf.convert_to_tensor(attention_mask)
      mask_bias = (attention_mask if attention_mask.dtype.is_floating and
                   attention_mask.shape.rank == 4 else
                   additive_attention_mask(attention_mask, self.compute_dtype))
    layout = _attention_layout()
    # Two chains pay off for inference latency at small batches; a training
    # step (large batches, and a gradient graph twice the size) runs one.
    if layout == "heads_first" and training is not True:
      layer_output, attention_scores = self._call_in_two_parts(
          input_tensor, mask_bias, batch, seq, training,
          return_attention_scores)
    else:
      block_input = tf.reshape(input_tensor, [-1, self.hidden_size])
      layer_input, query_key_input, value_input = self._attention_inputs(
          block_input, fuse=layout == "converter")
      attention_output = self.attention(
          query_key_input, value_input, mask_bias, batch, seq,
          training=training, return_scores=return_attention_scores)
      if return_attention_scores:
        attention_output, attention_scores = attention_output
      layer_output = self._after_attention(attention_output, layer_input,
                                           block_input, training)
      layer_output = tf.reshape(layer_output, [batch, seq, self.hidden_size])
    if return_attention_scores:
      return layer_output, attention_scores
    return layer_output

  def _call_in_two_parts(self, input_tensor, mask_bias, batch, seq, training,
                         return_scores):
    """The block on the two halves of the sequence, as two independent chains.

    Only attention needs the whole sequence (every query reads every key and
    value); everything else is per token. Two chains of ops let TensorFlow's
    executor keep both cores busy: a MobileBERT block is ~40 small ops, and
    with one chain the cores sat idle about half the time of a benchmark run
    (oneDNN splits each small op across the cores and waits). Same
    ops, same results to float32 rounding; see the module docstring for the
    measured gain.

    Returns:
      (`[batch, seq, hidden_size]`, probabilities `[batch, heads, seq, seq]`
      or None without `return_scores`).
    """
    attention = self.attention
    lengths = [seq // 2, seq - seq // 2]
    parts = tf.split(input_tensor, tf.stack(lengths), axis=1, num=2)
    prepared = []
    for part, length in zip(parts, lengths):
      block_input = tf.reshape(part, [-1, self.hidden_size])
      layer_input, query_key_input, value_input = self._attention_inputs(
          block_input)
      query, key, value = attention.project_heads_first(
          query_key_input, value_input, batch, length)
      prepared.append((block_input, layer_input, query, key, value))
    key = tf.concat([p[3] for p in prepared], axis=2)
    value = tf.concat([p[4] for p in prepared], axis=2)
    mask_bias = attention.heads_first_mask(mask_bias)
    part_masks = [mask_bias, mask_bias]
    if mask_bias is not None and mask_bias.shape[2] != 1:
      if mask_bias.shape[2] is None:  # 1 or seq: make it seq
        mask_bias = tf.broadcast_to(
            mask_bias, tf.concat([tf.shape(mask_bias)[:2], [seq, seq]], 0))
      part_masks = tf.split(mask_bias, tf.stack(lengths), axis=2, num=2)

    outputs, probs = [], []
    for (block_input, layer_input, query, _, _), part_mask, length in zip(
        prepared, part_masks, lengths):
      attention_output, part_probs = attention.attend_heads_first(
          query, key, value, part_mask, training)
      layer_output = self._after_attention(attention_output, layer_input,
                                           block_input, training)
      outputs.append(
          tf.reshape(layer_output, [batch, length, self.hidden_size]))
      probs.append(part_probs)
    output = tf.concat(outputs, axis=1)
    output.set_shape(input_tensor.shape)
    if not return_scores:
      return output, None
    # [heads, batch, seq, seq] -> [batch, heads, seq, seq]
    return output, tf.transpose(tf.concat(probs, axis=2), [1, 0, 2, 3])

  def _attention_inputs(self, block_input, fuse=False):
    """The bottlenecks before attention.

    Args:
      block_input: `[rows, hidden_size]`.
      fuse: projections of the block input share one matmul over concatenated
        kernels (for converters, which constant-fold the concatenation; per
        call it costs more than the second matmul).

    Returns:
      (layer_input: the residual around attention, query_key_input,
      value_input), each `[rows, width]`.
    """
    if not self.use_bottleneck:
      return block_input, block_input, block_input
    input_dense, input_norm = self.bottleneck_input
    if self.use_bottleneck_attention:
      layer_input = input_norm(_fused_dense(block_input, [input_dense])[0])
      return layer_input, layer_input, layer_input
    if not self.key_query_shared_bottleneck:
      layer_input = input_norm(_fused_dense(block_input, [input_dense])[0])
      return layer_input, block_input, block_input
    kq_dense, kq_norm = self.kq_shared_bottleneck
    if fuse:
      bottleneck, shared = _fused_dense(block_input, [input_dense, kq_dense])
    else:
      (bottleneck,) = _fused_dense(block_input, [input_dense])
      (shared,) = _fused_dense(block_input, [kq_dense])
    return input_norm(bottleneck), kq_norm(shared), block_input

  def _after_attention(self, attention_output, layer_input, block_input,
                       training):
    """Residual + norm, the FFNs and the output bottleneck, on `[rows, ...]`."""
    if not self.use_bottleneck:
      attention_output = self._hidden_dropout(attention_output,
                                              training=training)
    layer_output = self.attention_norm(attention_output + layer_input)

    ffns = self.feedforward_networks
    for i, (intermediate, output, norm) in enumerate(ffns):
      hidden = intermediate(layer_output)
      if self._activation is not None:
        hidden = self._activation(hidden)
      ffn_output = output(hidden)
      if not self.use_bottleneck and i == len(ffns) - 1:
        ffn_output = self._hidden_dropout(ffn_output, training=training)
      layer_output = norm(ffn_output + layer_output)

    if self.use_bottleneck:
      output_dense, output_norm = self.bottleneck_output
      dropout = self.block_layers["bottleneck_output"][1]
      layer_output = dropout(output_dense(layer_output), training=training)
      layer_output = output_norm(layer_output + block_input)
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
    })
    return config


@tf_keras.utils.register_keras_serializable(package=_PACKAGE)
class MobileBertMaskedLM(tf_keras.layers.Layer):
  """Masked-LM head: transform, layer norm, tied output embeddings.

  When `hidden_size > embedding width`, the output matrix is the embedding
  table widened by `extra_output_weights` `[vocab, hidden - embedding]`, as in
  the original `cls/predictions`.

  Args:
    embedding_table: the encoder's word embedding variable `[vocab, E]`
      (tied), or None to create an own table (what `from_config` does).
    activation: str. Transform activation (the config's `hidden_act`).
      Defaults to "gelu".
    initializer: weight initializer. Defaults to truncated normal, 0.02.
    output: "logits" or "predictions" (log-softmax). Defaults to "logits".
    vocab_size, embedding_width: ints, needed only without `embedding_table`.

  Call args:
    sequence_data: `[batch, seq, hidden]`.
    masked_positions: int32 `[batch, num_predictions]`.

  Returns:
    float32 `[batch, num_predictions, vocab]`.
  """

  def __init__(self, embedding_table=None, activation="gelu", initializer=None,
               output="logits", vocab_size=None, embedding_width=None,
               **kwargs):
    super().__init__(**kwargs)
    if output not in ("logits", "predictions"):
      raise ValueError('`output` must be "logits" or "predictions". '
                       f"Received: output={output!r}")
    if embedding_table is None and not (vocab_size and embedding_width):
      raise ValueError("Pass `embedding_table`, or `vocab_size` and "
                       "`embedding_width` to create an own table.")
    self.embedding_table = embedding_table
    self.activation = activation
    self._activation_fn = get_activation(activation)
    self.initializer = tf_keras.initializers.get(
        initializer or tf_keras.initializers.TruncatedNormal(stddev=0.02))
    self._output_type = output
    if embedding_table is not None:
      vocab_size, embedding_width = embedding_table.shape
    self.vocab_size = int(vocab_size)
    self.embedding_width = int(embedding_width)

  def build(self, input_shape):
    hidden_size = input_shape[-1]
    if self.embedding_table is None:
      self.embedding_table = self.add_weight(
          "embedding_table", shape=[self.vocab_size, self.embedding_width],
          initializer=_initializer(self.initializer))
    self.dense = tf_keras.layers.Dense(
        hidden_size, kernel_initializer=_initializer(self.initializer),
        name="transform/dense")
    self.dense.build([None, hidden_size])
    if hidden_size > self.embedding_width:
      self.extra_output_weights = self.add_weight(
          "extra_output_weights",
          shape=[self.vocab_size, hidden_size - self.embedding_width],
          initializer=_initializer(self.initializer))
    elif hidden_size == self.embedding_width:
      self.extra_output_weights = None
    else:
      raise ValueError(f"The hidden size ({hidden_size}) must not be smaller "
                       f"than the embedding width ({self.embedding_width}).")
    # Always a real layer norm, also for "no_norm" models (as in the original).
    self.layer_norm = tf_keras.layers.LayerNormalization(
        axis=-1, epsilon=1e-12, name="transform/LayerNorm")
    self.layer_norm.build([None, None, hidden_size])
    # The name is tf-models-official's (its checkpoints key it so).
    self.bias = self.add_weight("output_bias/bias", shape=[self.vocab_size],
                                initializer="zeros")
    super().build(input_shape)

  def call(self, sequence_data, masked_positions):
    # [batch, num_predictions, hidden]
    selected = tf.gather(sequence_data, masked_positions, batch_dims=1)
    hidden = self.dense(selected)
    if self._activation_fn is not None:
      hidden = self._activation_fn(hidden)
    hidden = self.layer_norm(hidden)
    table = tf.cast(self.embedding_table, hidden.dtype)
    if self.extra_output_weights is not None:
      table = tf.concat([table, self.extra_output_weights], axis=1)
    # [batch, num_predictions, vocab]
    logits = tf.nn.bias_add(tf.matmul(hidden, table, transpose_b=True),
                            self.bias)
    logits = tf.cast(logits, tf.float32)
    if self._output_type == "logits":
      return logits
    return tf.nn.log_softmax(logits)

  def get_config(self):
    # The tied table is not serializable; `from_config` creates an own one.
    config = super().get_config()
    config.update({
        "activation": self.activation,
        "initializer": tf_keras.initializers.serialize(self.initializer),
        "output": self._output_type,
        "vocab_size": self.vocab_size,
        "embedding_width": self.embedding_width,
    })
    return config
