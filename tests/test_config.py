"""MobileBertConfig: defaults, presets, JSON round trips, validation."""

import json
import logging
import os

import pytest

import mobilebert_tf
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import PRESETS
from mobilebert_tf.config import PRESET_DIR
from mobilebert_tf.config import load_config


def test_absent_keys_take_the_original_defaults():
  config = MobileBertConfig.from_dict({"vocab_size": 100})
  assert config.hidden_size == 768
  assert config.num_hidden_layers == 12
  assert config.hidden_act == "gelu"
  assert config.type_vocab_size == 16
  assert config.normalization_type == "layer_norm"
  assert config.classifier_activation is True
  assert config.trigram_input is False and config.use_bottleneck is False
  # Filled from hidden_size, as the original's from_dict does.
  assert config.embedding_size == 768
  assert config.intra_bottleneck_size == 768


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load_and_round_trip(name):
  config = MobileBertConfig.from_preset(name)
  assert config.num_hidden_layers == 24
  assert MobileBertConfig.from_dict(json.loads(config.to_json_string())) == (
      config)


def test_published_values():
  opt = MobileBertConfig.from_preset("uncased_L-24_H-128_B-512_A-4_F-4_OPT")
  assert (opt.hidden_size, opt.embedding_size, opt.true_hidden_size) == (
      512, 128, 128)
  assert opt.key_query_shared_bottleneck and opt.num_feedforward_networks == 4
  tiny = MobileBertConfig.from_preset(
      "uncased_L-24_H-128_B-512_A-4_F-2_tiny_OPT")
  assert tiny.use_bottleneck_attention and tiny.num_feedforward_networks == 2
  teacher = MobileBertConfig.from_preset("uncased_L-24_H-1024_B-512_A-4")
  assert teacher.normalization_type == "layer_norm"
  assert teacher.true_hidden_size == 1024 and teacher.hidden_act == "gelu"
  multi = MobileBertConfig.from_preset(
      "multi_cased_L-24_H-128_B-512_A-4_F-4_OPT")
  assert multi.vocab_size == 119547


def test_json_file_round_trip(tmp_path, tiny_config):
  path = tmp_path / "bert_config.json"
  path.write_text(tiny_config.to_json_string())
  assert MobileBertConfig.from_json_file(str(path)) == tiny_config


def test_unknown_keys_are_named_in_a_warning(caplog):
  with caplog.at_level(logging.WARNING):
    MobileBertConfig.from_dict({"vocab_size": 10, "hidden_size": 8,
                                "num_attention_heads": 2, "typo_key": 1})
  assert "typo_key" in caplog.text


@pytest.mark.parametrize("changes, message", [
    (dict(normalization_type="batch_norm"), "normalization_type"),
    (dict(hidden_act="swish"), "hidden_act"),
    (dict(hidden_size=30, num_attention_heads=4), "divisible"),
    (dict(use_bottleneck=True, intra_bottleneck_size=30), "intra_bottleneck_size"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(num_hidden_layers=-1), "num_hidden_layers"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(embedding_size=64), "embedding_size"),
    (dict(trigram_input="yes"), "trigram_input"),
    (dict(attention_mask_rule="-inf"), "attention_mask_rule"),
], ids=["norm", "act", "heads", "bottleneck-heads", "vocab", "layers",
        "dropout", "embedding-wider", "bool", "mask-rule"])
def test_invalid_values_raise_value_error_naming_the_field(changes, message):
  values = dict(vocab_size=10, hidden_size=32, num_attention_heads=4)
  values.update(changes)
  with pytest.raises(ValueError, match=message):
    MobileBertConfig.from_dict(values)


def test_allowed_values_are_listed_in_the_error():
  with pytest.raises(ValueError, match="no_norm"):
    MobileBertConfig(vocab_size=10, hidden_size=8, num_attention_heads=2,
                     normalization_type="batch_norm")


def test_file_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    MobileBertConfig.from_json_file(str(tmp_path / "missing.json"))
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    MobileBertConfig.from_json_file(str(bad))
  with pytest.raises(ValueError, match="vocab_size"):
    MobileBertConfig.from_dict({"hidden_size": 8})


def test_frozen_and_replace(tiny_config):
  with pytest.raises(Exception):
    tiny_config.hidden_size = 3
  wider = tiny_config.replace(hidden_size=64)
  assert wider.hidden_size == 64 and tiny_config.hidden_size == 32


def test_load_config_takes_a_preset_name_or_a_path(tmp_path, tiny_config):
  name = "uncased_L-24_H-128_B-512_A-4_F-4_OPT"
  assert load_config(name) == MobileBertConfig.from_preset(name)
  path = tmp_path / "bert_config.json"
  path.write_text(tiny_config.to_json_string())
  assert load_config(str(path)) == tiny_config
  with pytest.raises(FileNotFoundError, match=name):  # lists the presets
    load_config(str(tmp_path / "nothing.json"))


def test_presets_are_package_data():
  """The library reads nothing outside its package."""
  package_dir = os.path.dirname(os.path.abspath(mobilebert_tf.__file__))
  assert os.path.dirname(PRESET_DIR) == package_dir
  assert sorted(f[:-5] for f in os.listdir(PRESET_DIR)) == sorted(PRESETS)


@pytest.mark.parametrize("variant, widths", [
    (dict(use_bottleneck=False), (32, 32)),
    (dict(use_bottleneck=True, intra_bottleneck_size=16,
          key_query_shared_bottleneck=True), (16, 32)),
    (dict(use_bottleneck=True, intra_bottleneck_size=16,
          use_bottleneck_attention=True,
          key_query_shared_bottleneck=True), (16, 16)),
    (dict(use_bottleneck=True, intra_bottleneck_size=16), (32, 32)),
], ids=["plain", "kq-shared", "bottleneck-attention", "bottleneck-only"])
def test_attention_input_widths(variant, widths):
  config = MobileBertConfig(vocab_size=10, hidden_size=32,
                            num_attention_heads=4, **variant)
  assert config.attention_input_widths == widths
