"""The exact TF1 -> Keras variable table for a MobileBERT config. Pure: no I/O.

Every name is generated from the config (google-research `mobilebert/
modeling.py` scopes), never matched by substring, so a checkpoint variable
either has exactly one destination or none.

A Keras path is resolved against `pretrainer.checkpoint_items` by
`resolve`: "/"-separated attribute names, integers index lists, e.g.
`encoder/transformer_layers/3/attention/_query_dense/kernel`.
"""

import collections
import re
from typing import Dict, NamedTuple, Tuple

from mobilebert_tf.config import MobileBertConfig

# How a TF1 tensor becomes the Keras variable's value:
#   "identity"  same shape;
#   "reshape"   same values, the Keras shape (attention kernels are stored
#               `[in, heads * head_size]` in TF1, `[in, heads, head_size]` in
#               Keras `MultiHeadAttention`);
#   "transpose" 2-D transpose (`cls/seq_relationship/output_weights` is
#               `[2, hidden]`; the Keras kernel is `[hidden, 2]`).
TRANSFORMS = ("identity", "reshape", "transpose")

# TF1 variables that hold no model weights: optimizer slots and step counters.
_OPTIMIZER_NAME = re.compile(
    r"(^|/)(global_step|adam_m|adam_v|Adam(_\d+)?|AdamWeightDecayOptimizer(_\d+)?"
    r"|LAMB(_\d+)?|lamb_m|lamb_v|Momentum|ExponentialMovingAverage"
    r"|beta1_power|beta2_power|loss_scale|good_steps|current_loss_scale)"
    r"($|/)")


class Entry(NamedTuple):
  keras_path: str
  transform: str
  tf1_shape: Tuple[int, ...]


def is_optimizer_variable(tf1_name: str) -> bool:
  """True for optimizer slots (`adam_m`, LAMB, ...) and `global_step`."""
  return bool(_OPTIMIZER_NAME.search(tf1_name))


def _norm_name(config: MobileBertConfig) -> str:
  return "FakeLayerNorm" if config.normalization_type == "no_norm" else (
      "LayerNorm")


def tf1_to_keras(config: MobileBertConfig, with_mlm: bool = True,
                 with_nsp: bool = True) -> Dict[str, Entry]:
  """The table {TF1 name: Entry(keras_path, transform, tf1_shape)}.

  Args:
    config: the model configuration.
    with_mlm: include the `cls/predictions` head.
    with_nsp: include the `cls/seq_relationship` head.
  """
  c = config
  norm = _norm_name(c)
  width = c.true_hidden_size
  table = collections.OrderedDict()

  def add(tf1_name, keras_path, shape, transform="identity"):
    table[tf1_name] = Entry(keras_path, transform, tuple(shape))

  def dense(tf1_scope, keras_scope, in_width, out_width):
    add(f"{tf1_scope}/kernel", f"{keras_scope}/kernel", (in_width, out_width))
    add(f"{tf1_scope}/bias", f"{keras_scope}/bias", (out_width,))

  def normalization(tf1_scope, keras_scope, size):
    add(f"{tf1_scope}/{norm}/gamma", f"{keras_scope}/gamma", (size,))
    add(f"{tf1_scope}/{norm}/beta", f"{keras_scope}/beta", (size,))

  emb = "encoder/embedding_layer"
  add("bert/embeddings/word_embeddings", f"{emb}/word_embedding/embeddings",
      (c.vocab_size, c.embedding_size))
  if c.has_embedding_projection:
    projected = c.embedding_size * (3 if c.trigram_input else 1)
    dense("bert/embeddings/embedding_transformation",
          f"{emb}/word_embedding_proj", projected, c.hidden_size)
  add("bert/embeddings/token_type_embeddings",
      f"{emb}/type_embedding/embeddings", (c.type_vocab_size, c.hidden_size))
  add("bert/embeddings/position_embeddings",
      f"{emb}/pos_embedding/embeddings",
      (c.max_position_embeddings, c.hidden_size))
  normalization("bert/embeddings", f"{emb}/layer_norm", c.hidden_size)

  query_width, value_width = c.attention_input_widths
  heads, head_size = c.num_attention_heads, c.head_size
  for i in range(c.num_hidden_layers):
    tf1 = f"bert/encoder/layer_{i}"
    block = f"encoder/transformer_layers/{i}"
    if c.use_bottleneck:
      dense(f"{tf1}/bottleneck/input/dense",
            f"{block}/bottleneck_input/0", c.hidden_size, width)
      normalization(f"{tf1}/bottleneck/input", f"{block}/bottleneck_input/1",
                    width)
      if c.key_query_shared_bottleneck and not c.use_bottleneck_attention:
        dense(f"{tf1}/bottleneck/attention/dense",
              f"{block}/kq_shared_bottleneck/0", c.hidden_size, width)
        normalization(f"{tf1}/bottleneck/attention",
                      f"{block}/kq_shared_bottleneck/1", width)
    for part, in_width in (("query", query_width), ("key", query_width),
                           ("value", value_width)):
      add(f"{tf1}/attention/self/{part}/kernel",
          f"{block}/attention/_{part}_dense/kernel", (in_width, width),
          "reshape")
      add(f"{tf1}/attention/self/{part}/bias",
          f"{block}/attention/_{part}_dense/bias", (width,), "reshape")
    add(f"{tf1}/attention/output/dense/kernel",
        f"{block}/attention/_output_dense/kernel", (heads * head_size, width),
        "reshape")
    add(f"{tf1}/attention/output/dense/bias",
        f"{block}/attention/_output_dense/bias", (width,))
    normalization(f"{tf1}/attention/output", f"{block}/attention_norm", width)
    for f in range(c.num_feedforward_networks):
      # The last FFN has no `ffn_layer_N` scope in the original.
      scope = (tf1 if f == c.num_feedforward_networks - 1
               else f"{tf1}/ffn_layer_{f}")
      ffn = f"{block}/feedforward_networks/{f}"
      dense(f"{scope}/intermediate/dense", f"{ffn}/0", width,
            c.intermediate_size)
      dense(f"{scope}/output/dense", f"{ffn}/1", c.intermediate_size, width)
      normalization(f"{scope}/output", f"{ffn}/2", width)
    if c.use_bottleneck:
      dense(f"{tf1}/output/bottleneck/dense", f"{block}/bottleneck_output/0",
            width, c.hidden_size)
      normalization(f"{tf1}/output/bottleneck", f"{block}/bottleneck_output/1",
                    c.hidden_size)

  if c.classifier_activation:
    dense("bert/pooler/dense", "encoder/pooler_layer", c.hidden_size,
          c.hidden_size)
  if with_mlm:
    dense("cls/predictions/transform/dense", "masked_lm/dense", c.hidden_size,
          c.hidden_size)
    add("cls/predictions/transform/LayerNorm/gamma",
        "masked_lm/layer_norm/gamma", (c.hidden_size,))
    add("cls/predictions/transform/LayerNorm/beta",
        "masked_lm/layer_norm/beta", (c.hidden_size,))
    add("cls/predictions/output_bias", "masked_lm/bias", (c.vocab_size,))
    if c.hidden_size > c.embedding_size:
      add("cls/predictions/extra_output_weights",
          "masked_lm/extra_output_weights",
          (c.vocab_size, c.hidden_size - c.embedding_size))
  if with_nsp:
    add("cls/seq_relationship/output_weights", "next_sentence/kernel",
        (2, c.hidden_size), "transpose")
    add("cls/seq_relationship/output_bias", "next_sentence/bias", (2,))
  return table


def resolve(items, keras_path: str):
  """Follows a Keras path from `checkpoint_items` to a variable."""
  parts = keras_path.split("/")
  obj = items[parts[0]]
  for part in parts[1:]:
    obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
  return obj


def to_keras_value(value, entry: Entry, keras_shape):
  """The TF1 array as the Keras variable's value."""
  if entry.transform == "transpose":
    return value.T
  return value.reshape(keras_shape)


def to_tf1_value(value, entry: Entry):
  """The Keras variable's value as the TF1 array (inverse of the above)."""
  if entry.transform == "transpose":
    return value.T
  return value.reshape(entry.tf1_shape)
