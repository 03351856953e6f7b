"""MobileBERT configuration: the original `bert_config.json`, validated.

The field names and defaults are those of google-research `mobilebert/modeling.py`
(`BertConfig`), so the JSON files that ship with Google's checkpoints load as
they are. Layers use Model Garden argument names; `build_encoder` translates.
"""

import dataclasses
import json
import logging
import os
from typing import Any, Dict, Mapping, Optional, Tuple

ACTIVATIONS = ("linear", "relu", "relu6", "gelu", "tanh")
NORMALIZATION_TYPES = ("no_norm", "layer_norm", "manual_layer_norm")
# How attention treats padded keys (see `MobileBertConfig.attention_mask_rule`).
ATTENTION_MASK_RULES = ("exclude", "additive", "quantization_friendly")

_POSITIVE_INT_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "intermediate_size", "max_position_embeddings", "type_vocab_size",
    "embedding_size", "intra_bottleneck_size", "num_feedforward_networks")
_PROBABILITY_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
_BOOL_FIELDS = (
    "trigram_input", "use_bottleneck", "use_bottleneck_attention",
    "key_query_shared_bottleneck", "classifier_activation",
    "use_quantized_training")

# The published configurations, package data of this package.
PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "presets")


def attention_input_widths(hidden_size: int, intra_bottleneck_size: int,
                           use_bottleneck: bool,
                           use_bottleneck_attention: bool,
                           key_query_shared_bottleneck: bool
                           ) -> Tuple[int, int]:
  """(query/key input width, value input width) of a MobileBERT block.

  With bottleneck attention all three read the input bottleneck; with a
  key/query-shared bottleneck query and key read it, value the block input;
  otherwise all read the block input (`hidden_size`).
  """
  if not use_bottleneck:
    return hidden_size, hidden_size
  if use_bottleneck_attention:
    return intra_bottleneck_size, intra_bottleneck_size
  if key_query_shared_bottleneck:
    return intra_bottleneck_size, hidden_size
  return hidden_size, hidden_size


@dataclasses.dataclass(frozen=True)
class MobileBertConfig:
  """Configuration of a MobileBERT model, with the original JSON keys.

  Paper: https://arxiv.org/abs/2004.02984 (Sun et al., 2020).

  Args:
    vocab_size: int. Number of word pieces. Required.
    hidden_size: int. Width of the block inputs and outputs (the "inter-block"
      width, 512 in MobileBERT). Defaults to 768.
    num_hidden_layers: int. Number of transformer blocks. Defaults to 12.
    num_attention_heads: int. Attention heads per block. Defaults to 12.
    intermediate_size: int. Width of each feed-forward network. Defaults to
      3072.
    hidden_act: str. Activation of the feed-forward networks and of the MLM
      transform, one of `ACTIVATIONS`. "gelu" is the tanh approximation, as in
      the original code. Defaults to "gelu".
    hidden_dropout_prob: float. Dropout on hidden states. Defaults to 0.1.
    attention_probs_dropout_prob: float. Dropout on attention probabilities.
      Defaults to 0.1.
    max_position_embeddings: int. Longest supported sequence. Defaults to 512.
    type_vocab_size: int. Number of token types (segments). Defaults to 16.
    initializer_range: float. Stddev of the truncated-normal initializer.
      Defaults to 0.02.
    embedding_size: int. Width of the word embedding table. Defaults to
      `hidden_size`.
    trigram_input: bool. Concatenate each token's embedding with its
      neighbours' (a kernel-3 convolution in the paper). Defaults to False.
    use_bottleneck: bool. Use the bottleneck / inverted-bottleneck blocks.
      Defaults to False.
    intra_bottleneck_size: int. Width inside the bottleneck. Defaults to
      `hidden_size`.
    use_bottleneck_attention: bool. Feed the bottleneck output to query, key
      and value (MobileBERT-TINY). Takes precedence over
      `key_query_shared_bottleneck`. Defaults to False.
    key_query_shared_bottleneck: bool. A second bottleneck shared by query and
      key; value reads the block input. Defaults to False.
    num_feedforward_networks: int. Stacked feed-forward networks per block.
      Defaults to 1.
    normalization_type: str. "no_norm" (the element-wise `NoNorm` of the
      paper), "layer_norm" (epsilon 1e-12) or "manual_layer_norm" (epsilon
      1e-6). Defaults to "layer_norm".
    classifier_activation: bool. Tanh pooler on the first token; if False the
      pooled output is the first token itself. Defaults to True.
    attention_mask_rule: str. How attention leaves out padded keys, applied
      to the scaled scores before the softmax (`m` is the 0/1 key mask):
      "exclude" adds the dtype's large negative to padded keys so they get
      weight 0 to float precision (what tf-models-official and transformers
      do); "additive" is the original 2020 release's `scores + (1 - m) *
      -10000`; "quantization_friendly" is the 2021 quantization revision's
      `scores * m + (1 - m) * -6` (padded keys keep weight ~e^-6, and the
      scores stay in a range int8 can represent). Not a key of the original
      JSON files. Defaults to "exclude".
    use_quantized_training: bool. Quantization-aware training: 8-bit fake
      quantization where the original's `use_quantized_training` places it
      (every block's dense inputs and kernels, attention scores and context,
      NoNorm input/scale/offset/product; see `layers.quantization`), so the
      TFLite converter writes a full-integer model from the learnt ranges.
      Needs what the original needs: "no_norm", "relu6" and the
      "quantization_friendly" mask rule (`for_quantization_aware_training`
      makes such a config). A constructor argument of the original, not a
      key of its JSON files. Defaults to False.

  Raises:
    ValueError: a field has a value the original code cannot run.

  Example:
  >>> config = MobileBertConfig.from_preset("uncased_L-24_H-128_B-512_A-4_F-4_OPT")
  >>> config.true_hidden_size
  128
  """

  vocab_size: int
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 16
  initializer_range: float = 0.02
  embedding_size: Optional[int] = None
  trigram_input: bool = False
  use_bottleneck: bool = False
  intra_bottleneck_size: Optional[int] = None
  use_bottleneck_attention: bool = False
  key_query_shared_bottleneck: bool = False
  num_feedforward_networks: int = 1
  normalization_type: str = "layer_norm"
  classifier_activation: bool = True
  attention_mask_rule: str = "exclude"
  use_quantized_training: bool = False

  def __post_init__(self):
    # The original fills these two from hidden_size when absent.
    if self.embedding_size is None:
      object.__setattr__(self, "embedding_size", self.hidden_size)
    if self.intra_bottleneck_size is None:
      object.__setattr__(self, "intra_bottleneck_size", self.hidden_size)
    self.validate()

  def validate(self):
    """Raises ValueError naming the first field the original cannot run."""
    for name in _POSITIVE_INT_FIELDS:
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}")
    for name in _PROBABILITY_FIELDS:
      value = getattr(self, name)
      if (isinstance(value, bool) or not isinstance(value, (int, float)) or
          not 0.0 <= value < 1.0):
        raise ValueError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    for name in _BOOL_FIELDS:
      value = getattr(self, name)
      if not isinstance(value, bool):
        raise ValueError(
            f"`{name}` must be true or false. Received: {name}={value!r}")
    if (isinstance(self.initializer_range, bool) or
        not isinstance(self.initializer_range, (int, float)) or
        self.initializer_range <= 0):
      raise ValueError("`initializer_range` must be a positive number. "
                       f"Received: initializer_range={self.initializer_range!r}")
    if not isinstance(self.hidden_act, str) or (
        self.hidden_act.lower() not in ACTIVATIONS):
      raise ValueError(f"`hidden_act` must be one of {ACTIVATIONS}. "
                       f"Received: hidden_act={self.hidden_act!r}")
    if self.normalization_type not in NORMALIZATION_TYPES:
      raise ValueError(
          f"`normalization_type` must be one of {NORMALIZATION_TYPES}. "
          f"Received: normalization_type={self.normalization_type!r}")
    if self.attention_mask_rule not in ATTENTION_MASK_RULES:
      raise ValueError(
          f"`attention_mask_rule` must be one of {ATTENTION_MASK_RULES}. "
          f"Received: attention_mask_rule={self.attention_mask_rule!r}")
    if self.use_quantized_training:
      self._validate_quantized_training()
    width_name = ("intra_bottleneck_size" if self.use_bottleneck
                  else "hidden_size")
    if self.true_hidden_size % self.num_attention_heads:
      raise ValueError(
          f"`{width_name}` ({self.true_hidden_size}) must be divisible by "
          f"`num_attention_heads` ({self.num_attention_heads}): attention "
          "splits that width into equal heads.")
    if self.embedding_size > self.hidden_size:
      raise ValueError(
          f"`embedding_size` ({self.embedding_size}) must not exceed "
          f"`hidden_size` ({self.hidden_size}): the masked-LM head widens the "
          "embedding table to hidden_size with `extra_output_weights` of width "
          "hidden_size - embedding_size.")

  def _validate_quantized_training(self):
    needs = (("normalization_type", "no_norm"), ("hidden_act", "relu6"),
             ("attention_mask_rule", "quantization_friendly"))
    for name, value in needs:
      if str(getattr(self, name)).lower() != value:
        raise ValueError(
            f"use_quantized_training needs {name}={value!r} (8-bit ranges "
            f"cannot hold what the alternatives produce). Received: "
            f"{name}={getattr(self, name)!r}. "
            "`MobileBertConfig.for_quantization_aware_training()` converts "
            "a relu/relu6 no_norm config.")

  def for_quantization_aware_training(self) -> "MobileBertConfig":
    """This config with `use_quantized_training`, as the original needs it.

    `relu` becomes `relu6` (the same function up to 6) and the mask rule
    becomes "quantization_friendly"; all weights keep their meaning.

    Raises:
      ValueError: QAT cannot express this config: a normalization other than
        "no_norm" (the original's QAT quantizes NoNorm only), or an
        activation other than relu/relu6.
    """
    if self.normalization_type != "no_norm":
      raise ValueError(
          "Quantization-aware training needs normalization_type='no_norm' "
          "(MobileBERT's NoNorm, which the original's QAT quantizes). "
          f"Received: normalization_type={self.normalization_type!r}")
    if self.hidden_act.lower() not in ("relu", "relu6"):
      raise ValueError(
          "Quantization-aware training needs hidden_act 'relu' or 'relu6' "
          "(bounded, integer-friendly). Received: "
          f"hidden_act={self.hidden_act!r}")
    return self.replace(hidden_act="relu6",
                        attention_mask_rule="quantization_friendly",
                        use_quantized_training=True)

  @property
  def true_hidden_size(self) -> int:
    """Width the attention and feed-forward networks work at."""
    return (self.intra_bottleneck_size if self.use_bottleneck
            else self.hidden_size)

  @property
  def head_size(self) -> int:
    return self.true_hidden_size // self.num_attention_heads

  @property
  def attention_input_widths(self) -> Tuple[int, int]:
    """(query/key input width, value input width) of every block."""
    return attention_input_widths(
        self.hidden_size, self.intra_bottleneck_size, self.use_bottleneck,
        self.use_bottleneck_attention, self.key_query_shared_bottleneck)

  @property
  def has_embedding_projection(self) -> bool:
    """Whether `bert/embeddings/embedding_transformation` exists."""
    return self.trigram_input or self.embedding_size != self.hidden_size

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "MobileBertConfig":
    """Builds a config from a `bert_config.json` dict.

    Unknown keys are reported in a warning by name and ignored; absent keys
    take the original defaults.
    """
    if not isinstance(values, Mapping):
      raise TypeError("A MobileBERT config must be a JSON object (dict). "
                      f"Received: {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      logging.warning("Ignoring unknown MobileBERT config keys: %s",
                      ", ".join(unknown))
    if "vocab_size" not in values:
      raise ValueError("The MobileBERT config has no `vocab_size`; it is "
                       "required (e.g. 30522 for the English checkpoints).")
    return cls(**{k: v for k, v in values.items() if k in known})

  @classmethod
  def from_json_file(cls, path: str) -> "MobileBertConfig":
    """Reads a `bert_config.json` file.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not JSON, or a value is invalid.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"MobileBERT config file not found: {path}")
    with open(path, encoding="utf-8") as f:
      text = f.read()
    try:
      values = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"MobileBERT config file {path} is not valid JSON: "
                       f"{e.msg} at line {e.lineno}.") from None
    return cls.from_dict(values)

  @classmethod
  def from_preset(cls, name: str) -> "MobileBertConfig":
    """Loads one of the published configurations (see `PRESETS`)."""
    if name not in PRESETS:
      raise ValueError(f"Unknown preset {name!r}. Available: {sorted(PRESETS)}")
    return cls.from_json_file(os.path.join(PRESET_DIR, name + ".json"))

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json_string(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def replace(self, **changes) -> "MobileBertConfig":
    """Returns a copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)


# name -> description; the JSON files live in mobilebert_tf/presets/.
PRESETS = {
    "uncased_L-24_H-128_B-512_A-4_F-4_OPT":
        "MobileBERT (English, uncased): 24 blocks, 4 stacked FFNs, NoNorm.",
    "uncased_L-24_H-128_B-512_A-4_F-2_tiny_OPT":
        "MobileBERT-TINY (English, uncased): bottleneck attention, 2 FFNs.",
    "uncased_L-24_H-1024_B-512_A-4":
        "IB-BERT teacher: inverted bottleneck of 1024, LayerNorm, GELU.",
    "multi_cased_L-24_H-128_B-512_A-4_F-4_OPT":
        "Multilingual MobileBERT (cased, mBERT vocabulary of 119547 pieces).",
}


def load_config(name_or_path: str) -> MobileBertConfig:
  """A preset name (see `PRESETS`) or the path of a `bert_config.json`.

  What every `--bert_config_file` flag of the project accepts.

  Raises:
    FileNotFoundError: neither a preset nor an existing file; the message
      lists the presets.
    ValueError: the file is not a valid config.
  """
  name_or_path = os.fspath(name_or_path)
  if name_or_path in PRESETS:
    return MobileBertConfig.from_preset(name_or_path)
  if not os.path.isfile(name_or_path):
    raise FileNotFoundError(
        f"MobileBERT config file not found: {name_or_path}. Pass the path of "
        f"a bert_config.json or a preset name: {', '.join(sorted(PRESETS))}.")
  return MobileBertConfig.from_json_file(name_or_path)
