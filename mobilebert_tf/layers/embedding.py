"""MobileBERT's embedding layer: word (trigram) + position + token type."""

import tensorflow as tf
import tf_keras

from mobilebert_tf.layers.initializers import clone_initializer
from mobilebert_tf.layers.initializers import default_initializer
from mobilebert_tf.layers.normalization import get_norm_layer
from mobilebert_tf.layers.serialization import PACKAGE


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
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
        initializer or default_initializer())
    self.dropout_rate = dropout_rate
    self.trigram_input = trigram_input
    self.validate_inputs = validate_inputs

    self.word_embedding = tf_keras.layers.Embedding(
        word_vocab_size, word_embed_size,
        embeddings_initializer=clone_initializer(self.initializer),
        name="word_embedding")
    self.type_embedding = tf_keras.layers.Embedding(
        type_vocab_size, output_embed_size,
        embeddings_initializer=clone_initializer(self.initializer),
        name="type_embedding")
    self.pos_embedding = tf_keras.layers.Embedding(
        max_sequence_length, output_embed_size,
        embeddings_initializer=clone_initializer(self.initializer),
        name="position_embedding")
    projected_width = word_embed_size * (3 if trigram_input else 1)
    if projected_width != output_embed_size or trigram_input:
      self.word_embedding_proj = tf_keras.layers.Dense(
          output_embed_size, kernel_initializer=clone_initializer(self.initializer),
          name="embedding_projection")
    else:
      self.word_embedding_proj = None
    self.layer_norm = get_norm_layer(normalization_type, "embedding_norm")
    self.dropout_layer = tf_keras.layers.Dropout(
        dropout_rate, name="embedding_dropout")

  def build(self, input_shape):
    # Each sublayer under its own name scope, so its variables are named
    # after it (`.../word_embedding/embeddings`).
    sublayers = [(self.word_embedding, [None, None]),
                 (self.type_embedding, [None, None]),
                 (self.pos_embedding, [None, None]),
                 (self.layer_norm, [None, None, self.output_embed_size])]
    if self.word_embedding_proj is not None:
      in_width = self.word_embed_size * (3 if self.trigram_input else 1)
      sublayers.append((self.word_embedding_proj, [None, in_width]))
    for layer, shape in sublayers:
      with tf.name_scope(layer.name):
        layer.build(shape)
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
