"""MobileBERT's masked-LM head (the original's `cls/predictions`)."""

import tensorflow as tf
import tf_keras

from mobilebert_tf.layers.activations import get_activation
from mobilebert_tf.layers.initializers import clone_initializer
from mobilebert_tf.layers.initializers import default_initializer
from mobilebert_tf.layers.serialization import PACKAGE


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
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
        initializer or default_initializer())
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
          initializer=clone_initializer(self.initializer))
    self.dense = tf_keras.layers.Dense(
        hidden_size, kernel_initializer=clone_initializer(self.initializer),
        name="transform/dense")
    with tf.name_scope("transform/dense"):
      self.dense.build([None, hidden_size])
    if hidden_size > self.embedding_width:
      self.extra_output_weights = self.add_weight(
          "extra_output_weights",
          shape=[self.vocab_size, hidden_size - self.embedding_width],
          initializer=clone_initializer(self.initializer))
    elif hidden_size == self.embedding_width:
      self.extra_output_weights = None
    else:
      raise ValueError(f"The hidden size ({hidden_size}) must not be smaller "
                       f"than the embedding width ({self.embedding_width}).")
    # Always a real layer norm, also for "no_norm" models (as in the original).
    self.layer_norm = tf_keras.layers.LayerNormalization(
        axis=-1, epsilon=1e-12, name="transform/LayerNorm")
    with tf.name_scope("transform/LayerNorm"):
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
    # 2-D matmuls: a [batch, P, width] x [vocab, width] matmul is a
    # broadcasting BatchMatMul whose gradient for the table materializes
    # [batch, vocab, width] (it made a pretraining step 1.5x slower).
    rows = tf.shape(hidden)[:2]
    flat = tf.reshape(hidden, [-1, hidden.shape[-1]])  # [batch * P, width]
    if self.extra_output_weights is None:
      logits = tf.matmul(flat, table, transpose_b=True)
    else:
      # The original multiplies by the table widened by the extra weights,
      # concat([table, extra], axis=1). The same sum as two products: the
      # gradient of that concat slices a [vocab, hidden] tensor by columns,
      # which took 9% of an English OPT pretraining step in a profile
      # (batch 16 x 128, 213 of 2,400 ms).
      extra = tf.cast(self.extra_output_weights, hidden.dtype)
      logits = (tf.matmul(flat[:, :self.embedding_width], table,
                          transpose_b=True) +
                tf.matmul(flat[:, self.embedding_width:], extra,
                          transpose_b=True))  # [batch * P, vocab]
    logits = tf.nn.bias_add(logits, self.bias)
    # [batch, num_predictions, vocab]
    logits = tf.reshape(logits, tf.concat([rows, [self.vocab_size]], 0))
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
