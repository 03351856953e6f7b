"""MobileBERTEncoder: embeddings, transformer blocks and pooler as a Keras model."""

import tensorflow as tf
import tf_keras

from mobilebert_tf import _compat
from mobilebert_tf import layers
from mobilebert_tf.config import MobileBertConfig

# The encoder's inputs, TF-Hub's names: int32 [batch, seq] each.
ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


class _KeyMask(tf_keras.layers.Layer):
  """The 0/1 key mask `[batch, 1, 1, seq]`, made once for all blocks."""

  def call(self, input_word_ids, input_mask, input_type_ids):
    del input_word_ids, input_type_ids  # checked by `_InputCheck`
    return layers.key_mask(input_mask, self.compute_dtype)


class _InputCheck(_KeyMask):
  """Checks that the three inputs have one shape; returns the 0/1 key mask."""

  def call(self, input_word_ids, input_mask, input_type_ids):
    static = [t.shape for t in (input_word_ids, input_mask, input_type_ids)]
    for name, shape in zip(("input_mask", "input_type_ids"), static[1:]):
      if shape.rank != 2 or not shape.is_compatible_with(static[0]):
        raise ValueError(f"`{name}` must have the shape of `input_word_ids` "
                         f"{static[0]}. Received: {shape}")
    checks = [
        tf.debugging.assert_equal(
            tf.shape(input_word_ids), tf.shape(t),
            message=f"{name} must have the shape of input_word_ids")
        for name, t in (("input_mask", input_mask),
                        ("input_type_ids", input_type_ids))]
    with tf.control_dependencies(checks):
      return super().call(input_word_ids, input_mask, input_type_ids)


@tf_keras.utils.register_keras_serializable(package="MobileBertTF")
class MobileBERTEncoder(tf_keras.Model):
  """The MobileBERT encoder (Sun et al., 2020, https://arxiv.org/abs/2004.02984).

  A functional Keras model with the inputs and outputs of TF-Hub's encoder API.
  Argument names are tf-models-official's `MobileBERTEncoder`'s, plus
  `trigram_input` and `use_bottleneck` (which it cannot express); its
  checkpoints restore into this model and back. Build one from a
  `MobileBertConfig` with `build_encoder`.

  Args:
    word_vocab_size: int. Defaults to 30522.
    word_embed_size: int. Defaults to 128.
    type_vocab_size: int. Defaults to 2.
    max_sequence_length: int. Defaults to 512.
    num_blocks: int. Defaults to 24.
    hidden_size: int. Defaults to 512.
    num_attention_heads: int. Defaults to 4.
    intermediate_size: int. Defaults to 512.
    intermediate_act_fn: str. Defaults to "relu".
    hidden_dropout_prob: float. Defaults to 0.1.
    attention_probs_dropout_prob: float. Defaults to 0.1.
    intra_bottleneck_size: int. Defaults to 128.
    initializer_range: float. Defaults to 0.02.
    use_bottleneck_attention: bool. Defaults to False.
    key_query_shared_bottleneck: bool. Defaults to True.
    num_feedforward_networks: int. Defaults to 4.
    normalization_type: str. Defaults to "no_norm".
    classifier_activation: bool. Tanh pooler; else the first token. Defaults
      to False.
    trigram_input: bool. Defaults to True.
    use_bottleneck: bool. Defaults to True.
    attention_mask_rule: str. How attention leaves out padded keys, one of
      `config.ATTENTION_MASK_RULES` (see `MobileBertConfig`). Defaults to
      "exclude".
    attention_layout: str. "standard" (default) or "heads_first" (an opt-in
      inference layout); see `MobileBertTransformer`. Same results to
      float32 rounding; serialized by `get_config`.
    use_quantized_training: bool. Quantization-aware training: the blocks
      fake-quantize as the original's QAT does (see `MobileBertTransformer`);
      the embeddings and the pooler stay float, as there. Defaults to False.
    return_attention_scores: bool. Add `attention_scores` (the attention
      probabilities, one `[batch, heads, seq, seq]` per block) to the
      outputs; costs time and memory. Defaults to False.
    return_attention_logits: bool. Add `attention_logits` (the masked
      pre-softmax scores, one `[batch, heads, seq, seq]` per block: the
      original's `get_all_attention_maps()`, what attention distillation
      compares) to the outputs. Defaults to False.
    validate_inputs: bool. Check ids, lengths and shapes at run time. Defaults
      to True.

  Inputs: a dict of int32 `[batch, seq]` tensors `input_word_ids`,
    `input_mask`, `input_type_ids` (seq up to `max_sequence_length`).

  Outputs: a dict with `sequence_output` `[batch, seq, hidden]`,
    `pooled_output` `[batch, hidden]`, `encoder_outputs` (one
    `[batch, seq, hidden]` per block, the last is `sequence_output`),
    `embedding_output` `[batch, seq, hidden]`.

  Example:
  >>> encoder = build_encoder(MobileBertConfig(vocab_size=100, hidden_size=32,
  ...     num_hidden_layers=2, num_attention_heads=4, intermediate_size=32))
  >>> ids = tf.constant([[2, 7, 3, 0]])
  >>> out = encoder(dict(input_word_ids=ids, input_mask=tf.sign(ids),
  ...                    input_type_ids=tf.zeros_like(ids)))
  >>> out["sequence_output"].shape
  TensorShape([1, 4, 32])
  """

  def __init__(self,
               word_vocab_size=30522,
               word_embed_size=128,
               type_vocab_size=2,
               max_sequence_length=512,
               num_blocks=24,
               hidden_size=512,
               num_attention_heads=4,
               intermediate_size=512,
               intermediate_act_fn="relu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               intra_bottleneck_size=128,
               initializer_range=0.02,
               use_bottleneck_attention=False,
               key_query_shared_bottleneck=True,
               num_feedforward_networks=4,
               normalization_type="no_norm",
               classifier_activation=False,
               trigram_input=True,
               use_bottleneck=True,
               attention_mask_rule="exclude",
               attention_layout="standard",
               use_quantized_training=False,
               return_attention_scores=False,
               return_attention_logits=False,
               validate_inputs=True,
               **kwargs):
    config = {k: v for k, v in locals().items()
              if k not in ("self", "kwargs", "__class__")}
    config.update(kwargs)
    # Like tf-models-official's encoder (so the object graphs and the
    # checkpoints are identical): these attributes are conveniences, not
    # checkpoint dependencies; the layers are tracked once, as the functional
    # model's `layer_with_weights-N`.
    _compat.stop_attribute_tracking(self)
    initializer = tf_keras.initializers.TruncatedNormal(
        stddev=initializer_range)
    self.embedding_layer = layers.MobileBertEmbedding(
        word_vocab_size=word_vocab_size,
        word_embed_size=word_embed_size,
        type_vocab_size=type_vocab_size,
        output_embed_size=hidden_size,
        max_sequence_length=max_sequence_length,
        normalization_type=normalization_type,
        initializer=initializer,
        dropout_rate=hidden_dropout_prob,
        trigram_input=trigram_input,
        validate_inputs=validate_inputs,
        name="mobile_bert_embedding")
    self._transformer_layers = [
        layers.MobileBertTransformer(
            hidden_size=hidden_size,
            num_attention_heads=num_attention_heads,
            intermediate_size=intermediate_size,
            intermediate_act_fn=intermediate_act_fn,
            hidden_dropout_prob=hidden_dropout_prob,
            attention_probs_dropout_prob=attention_probs_dropout_prob,
            intra_bottleneck_size=intra_bottleneck_size,
            use_bottleneck_attention=use_bottleneck_attention,
            key_query_shared_bottleneck=key_query_shared_bottleneck,
            num_feedforward_networks=num_feedforward_networks,
            normalization_type=normalization_type,
            initializer=initializer,
            use_bottleneck=use_bottleneck,
            attention_mask_rule=attention_mask_rule,
            attention_layout=attention_layout,
            use_quantized_training=use_quantized_training,
            name=f"transformer_layer_{i}")
        for i in range(num_blocks)]
    self._pooler_layer = tf_keras.layers.Dense(
        hidden_size, activation="tanh", kernel_initializer=initializer,
        name="pooler") if classifier_activation else None

    inputs = dict(
        input_word_ids=tf_keras.Input(
            shape=(None,), dtype=tf.int32, name="input_word_ids"),
        input_mask=tf_keras.Input(
            shape=(None,), dtype=tf.int32, name="input_mask"),
        input_type_ids=tf_keras.Input(
            shape=(None,), dtype=tf.int32, name="input_type_ids"))
    key_mask_layer = (_InputCheck(name="input_check") if validate_inputs
                      else _KeyMask(name="key_mask"))
    mask = key_mask_layer(inputs["input_word_ids"], inputs["input_mask"],
                          inputs["input_type_ids"])
    embedding_output = self.embedding_layer(inputs["input_word_ids"],
                                            inputs["input_type_ids"])
    hidden = embedding_output
    encoder_outputs, attention_scores, attention_logits = [], [], []
    for block in self._transformer_layers:
      result = block(hidden, mask,
                     return_attention_scores=return_attention_scores,
                     return_attention_logits=return_attention_logits)
      if not (return_attention_scores or return_attention_logits):
        result = (result,)
      hidden, *extra = result
      if return_attention_scores:
        attention_scores.append(extra.pop(0))
      if return_attention_logits:
        attention_logits.append(extra.pop(0))
      encoder_outputs.append(hidden)
    first_token = hidden[:, 0, :]  # [batch, hidden]
    pooled_output = (self._pooler_layer(first_token) if classifier_activation
                     else first_token)
    outputs = dict(
        sequence_output=hidden,
        pooled_output=pooled_output,
        encoder_outputs=encoder_outputs,
        embedding_output=embedding_output)
    if return_attention_scores:
      outputs["attention_scores"] = attention_scores
    if return_attention_logits:
      outputs["attention_logits"] = attention_logits
    super().__init__(inputs=inputs, outputs=outputs, **kwargs)
    self._config = config

  def get_config(self):
    return dict(self._config)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(**config)

  def get_embedding_table(self):
    """The word embedding variable `[vocab, word_embed_size]`."""
    return self.embedding_layer.word_embedding.embeddings

  def get_embedding_layer(self):
    return self.embedding_layer.word_embedding

  @property
  def transformer_layers(self):
    """The `MobileBertTransformer` blocks, in order."""
    return list(self._transformer_layers)

  @property
  def pooler_layer(self):
    """The tanh pooler `Dense`, or None without `classifier_activation`."""
    return self._pooler_layer


def encoder_kwargs(config: MobileBertConfig, **overrides):
  """`MobileBERTEncoder` arguments for a config (original keys -> layer names)."""
  kwargs = dict(
      word_vocab_size=config.vocab_size,
      word_embed_size=config.embedding_size,
      type_vocab_size=config.type_vocab_size,
      max_sequence_length=config.max_position_embeddings,
      num_blocks=config.num_hidden_layers,
      hidden_size=config.hidden_size,
      num_attention_heads=config.num_attention_heads,
      intermediate_size=config.intermediate_size,
      intermediate_act_fn=config.hidden_act.lower(),
      hidden_dropout_prob=config.hidden_dropout_prob,
      attention_probs_dropout_prob=config.attention_probs_dropout_prob,
      intra_bottleneck_size=config.intra_bottleneck_size,
      initializer_range=config.initializer_range,
      use_bottleneck_attention=config.use_bottleneck_attention,
      key_query_shared_bottleneck=config.key_query_shared_bottleneck,
      num_feedforward_networks=config.num_feedforward_networks,
      normalization_type=config.normalization_type,
      classifier_activation=config.classifier_activation,
      trigram_input=config.trigram_input,
      use_bottleneck=config.use_bottleneck,
      attention_mask_rule=config.attention_mask_rule,
      use_quantized_training=config.use_quantized_training)
  kwargs.update(overrides)
  return kwargs


def build_encoder(config: MobileBertConfig, **overrides) -> MobileBERTEncoder:
  """Builds the encoder for a `MobileBertConfig`.

  Args:
    config: the model configuration.
    **overrides: `MobileBERTEncoder` arguments to set, e.g.
      `return_attention_logits=True` or `attention_layout="heads_first"`.
  """
  if not isinstance(config, MobileBertConfig):
    raise TypeError("`config` must be a MobileBertConfig. Received: "
                    f"{type(config).__name__}")
  return MobileBERTEncoder(**encoder_kwargs(config, **overrides))
