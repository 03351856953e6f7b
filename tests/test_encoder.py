"""MobileBERTEncoder and pretrainer: API, Keras integration, bad input, size."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.projects.mobilebert import model_utils as tfm_model_utils

from tests.helpers import TINY_CONFIG
from tests.helpers import make_encoder_inputs
from mobilebert_tf import MobileBERTEncoder
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import MobileBertPretrainer
from mobilebert_tf import build_encoder
from mobilebert_tf import build_pretrainer
from mobilebert_tf import model_utils
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.numerics import relative_error

# tf-models-official 2.20.0's model_utils uses tf_keras without importing it.
tfm_model_utils.tf_keras = tf_keras



def _encoder_inputs(inputs):
  return {k: inputs[k] for k in ENCODER_INPUTS}


def test_outputs(tiny_config, tiny_inputs):
  encoder = build_encoder(tiny_config)
  out = encoder(_encoder_inputs(tiny_inputs))
  assert set(out) == {"sequence_output", "pooled_output", "encoder_outputs",
                      "embedding_output"}
  assert out["sequence_output"].shape == (3, 8, 32)
  assert len(out["encoder_outputs"]) == tiny_config.num_hidden_layers
  np.testing.assert_array_equal(out["encoder_outputs"][-1],
                                out["sequence_output"])
  # No classifier activation: the pooled output is the first token.
  np.testing.assert_array_equal(out["pooled_output"],
                                out["sequence_output"][:, 0])
  assert encoder.get_embedding_table().shape == (64, 16)


def test_pooler_and_attention_scores_only_when_asked(tiny_config, tiny_inputs):
  config = tiny_config.replace(classifier_activation=True)
  encoder = build_encoder(config, return_attention_scores=True)
  out = encoder(_encoder_inputs(tiny_inputs))
  np.testing.assert_allclose(
      out["pooled_output"],
      encoder.pooler_layer(out["sequence_output"][:, 0]), rtol=1e-6)
  assert len(out["attention_scores"]) == 2
  assert out["attention_scores"][0].shape == (3, 4, 8, 8)
  assert "attention_scores" not in build_encoder(config)(
      _encoder_inputs(tiny_inputs))


@pytest.mark.parametrize("batch, seq", [(1, 1), (2, 5), (5, 32)])
def test_any_batch_and_length_up_to_the_maximum(tiny_config, batch, seq):
  encoder = build_encoder(tiny_config)
  inputs = make_encoder_inputs(tiny_config, batch=batch, seq=seq,
                               num_predictions=1)
  assert encoder(_encoder_inputs(inputs))["sequence_output"].shape == (
      batch, seq, 32)


def test_padding_does_not_change_real_positions(tiny_config):
  encoder = build_encoder(tiny_config)
  inputs = make_encoder_inputs(tiny_config, batch=1, seq=6)
  short = {k: v[:, :4] for k, v in _encoder_inputs(inputs).items()}
  padded = {k: np.pad(v, [[0, 0], [0, 3]]) for k, v in short.items()}
  padded["input_word_ids"][:, 4:] = 9  # garbage under the padding
  a = encoder(short)["sequence_output"]
  b = encoder(padded)["sequence_output"][:, :4]
  # Trigram input reads the right neighbour of the last real token, so only
  # compare positions whose window stays inside the real tokens.
  np.testing.assert_allclose(a[:, :3], b[:, :3], rtol=1e-5, atol=1e-5)


def test_unvalidated_inputs_compute_the_same(tiny_config):
  """`validate_inputs=False` drops the checks, not the mask's binarization."""
  checked = build_encoder(tiny_config)
  unchecked = build_encoder(tiny_config, validate_inputs=False)
  unchecked.set_weights(checked.get_weights())
  inputs = _encoder_inputs(make_encoder_inputs(tiny_config, batch=2, seq=6))
  inputs["input_mask"] = np.array([[1] * 6, [1] * 3 + [0] * 3], np.int32)
  want = checked(inputs)["sequence_output"]
  twos = dict(inputs, input_mask=inputs["input_mask"] * 2)
  np.testing.assert_array_equal(unchecked(twos)["sequence_output"], want)
  assert "key_mask" in [layer.name for layer in unchecked.layers]


def test_config_round_trip(tiny_config, tiny_inputs):
  encoder = build_encoder(tiny_config)
  clone = MobileBERTEncoder.from_config(encoder.get_config())
  assert clone.get_config() == encoder.get_config()
  clone.set_weights(encoder.get_weights())
  np.testing.assert_array_equal(
      clone(_encoder_inputs(tiny_inputs))["sequence_output"],
      encoder(_encoder_inputs(tiny_inputs))["sequence_output"])
  pretrainer = build_pretrainer(tiny_config, with_nsp=True)
  clone = MobileBertPretrainer.from_config(pretrainer.get_config())
  assert clone.get_config() == pretrainer.get_config()
  assert len(clone.weights) == len(pretrainer.weights)


def test_pretrainer_outputs(tiny_config, tiny_inputs):
  pretrainer = build_pretrainer(tiny_config, with_nsp=True)
  out = pretrainer(tiny_inputs)
  assert out["mlm_logits"].shape == (3, 3, 64)
  assert out["next_sentence"].shape == (3, 2)
  assert set(pretrainer.checkpoint_items) == {
      "encoder", "masked_lm", "next_sentence"}
  assert pretrainer.encoder_network.get_embedding_table() is (
      pretrainer.masked_lm.embedding_table)
  assert "next_sentence" not in build_pretrainer(tiny_config).checkpoint_items


@pytest.mark.slow  # a learning test
def test_trains_with_fit_inside_a_functional_model(tiny_config):
  tf_keras.utils.set_random_seed(1)
  encoder = build_encoder(tiny_config)
  inputs = {k: tf_keras.Input([None], dtype=tf.int32, name=k)
            for k in ENCODER_INPUTS}
  logits = tf_keras.layers.Dense(2)(encoder(inputs)["pooled_output"])
  model = tf_keras.Model(inputs, logits)
  model.compile(tf_keras.optimizers.Adam(3e-3),
                tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  data = make_encoder_inputs(tiny_config, batch=32, seq=8, seed=3)
  data = _encoder_inputs(data)
  # Toy task: does the sequence start with an even token id?
  labels = (data["input_word_ids"][:, 0] % 2).astype(np.int32)
  history = model.fit(data, labels, epochs=15, batch_size=8, verbose=0)
  assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_saved_model_round_trip(tiny_config, tiny_inputs, tmp_path):
  encoder = build_encoder(tiny_config)
  inputs = _encoder_inputs(tiny_inputs)
  expected = encoder(inputs)
  encoder.save(str(tmp_path / "encoder"), include_optimizer=False)
  reloaded = tf_keras.models.load_model(str(tmp_path / "encoder"))
  actual = reloaded(inputs)
  for key in ("sequence_output", "pooled_output", "embedding_output"):
    np.testing.assert_array_equal(actual[key], expected[key])
  loaded = tf.saved_model.load(str(tmp_path / "encoder"))
  np.testing.assert_array_equal(
      loaded(inputs, training=False)["sequence_output"],
      expected["sequence_output"])


# Rounding unit 2^-8 (bfloat16) and 2^-11 (float16); the tiny model's two
# blocks chain ~40 rounded ops, so allow ~13 units.
MIXED_TOLERANCE = {"mixed_bfloat16": 13 * 2.0**-8, "mixed_float16": 13 * 2.0**-11}


@pytest.mark.parametrize("policy", sorted(MIXED_TOLERANCE))
@pytest.mark.parametrize("rule", ["exclude", "additive",
                                  "quantization_friendly"])
def test_mixed_precision(tiny_config, tiny_inputs, policy, rule):
  """Half-precision compute with every mask rule: finite, close to float32,
  padded keys still left out (probabilities ~0 or the rule's e^-6 share)."""
  config = tiny_config.replace(attention_mask_rule=rule)
  tf_keras.utils.set_random_seed(2)
  reference = build_pretrainer(config, return_attention_scores=True)
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    mixed = build_pretrainer(config, return_attention_scores=True)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  mixed.set_weights(reference.get_weights())
  a, b = mixed(tiny_inputs), reference(tiny_inputs)
  assert a["sequence_output"].dtype == tf.as_dtype(policy.split("_")[1])
  assert a["mlm_logits"].dtype == tf.float32
  for key in ("sequence_output", "mlm_logits"):
    values = np.asarray(tf.cast(a[key], tf.float32))
    assert np.isfinite(values).all()
    assert relative_error(values, b[key]) < MIXED_TOLERANCE[policy], key
  probs = np.asarray(tf.cast(a["attention_scores"][0], tf.float32))
  padded = tiny_inputs["input_mask"][:, None, None, :] == 0
  padded = np.broadcast_to(padded, probs.shape)
  if rule == "exclude":
    assert probs[padded].max() == 0.0
  np.testing.assert_allclose(
      probs, np.asarray(b["attention_scores"][0]),
      atol=MIXED_TOLERANCE[policy])


def test_attention_logits_only_when_asked(tiny_config, tiny_inputs):
  """The masked pre-softmax scores of every block; softmax of them gives the
  probabilities; both layouts agree."""
  want = None
  for layout in ("standard", "heads_first"):
    tf_keras.utils.set_random_seed(3)
    encoder = build_encoder(tiny_config, return_attention_logits=True,
                            return_attention_scores=True,
                            attention_layout=layout)
    out = encoder(_encoder_inputs(tiny_inputs))
    assert len(out["attention_logits"]) == tiny_config.num_hidden_layers
    for logits, probs in zip(out["attention_logits"], out["attention_scores"]):
      assert logits.shape == (3, 4, 8, 8)
      np.testing.assert_allclose(tf.nn.softmax(logits), probs, atol=1e-6)
    if want is None:
      want = out
    else:
      for key in ("sequence_output", "attention_logits"):
        assert relative_error(out[key], want[key]) < 1e-6, key
  plain = build_encoder(tiny_config)(_encoder_inputs(tiny_inputs))
  assert "attention_logits" not in plain and "attention_scores" not in plain


def test_variable_names(tiny_config):
  """Every variable is named after the layer that owns it (stable names:
  checkpoints of other tools and weight-decay rules read them)."""
  pretrainer = build_pretrainer(tiny_config, with_nsp=True)
  names = {v.name for v in pretrainer.variables}
  assert len(names) == len(pretrainer.variables)  # unique
  block = "transformer_layer_1"
  expected = {
      "mobile_bert_embedding/word_embedding/embeddings:0",
      "mobile_bert_embedding/type_embedding/embeddings:0",
      "mobile_bert_embedding/position_embedding/embeddings:0",
      "mobile_bert_embedding/embedding_projection/kernel:0",
      "mobile_bert_embedding/embedding_norm/gamma:0",
      f"{block}/bottleneck_input/dense/kernel:0",
      f"{block}/bottleneck_input/norm/beta:0",
      f"{block}/kq_shared_bottleneck/dense/bias:0",
      f"{block}/attention/query/kernel:0",
      f"{block}/attention/key/bias:0",
      f"{block}/attention/value/kernel:0",
      f"{block}/attention/attention_output/kernel:0",
      f"{block}/attention/norm/gamma:0",
      f"{block}/ffn_layer_0/intermediate_dense/kernel:0",
      f"{block}/ffn_layer_1/output_dense/bias:0",
      f"{block}/ffn_layer_1/norm/beta:0",
      f"{block}/bottleneck_output/dense/kernel:0",
      f"{block}/bottleneck_output/norm/gamma:0",
      "bert/cls/predictions/transform/dense/kernel:0",
      "bert/cls/predictions/transform/LayerNorm/gamma:0",
      "bert/cls/predictions/extra_output_weights:0",
      "bert/cls/predictions/output_bias/bias:0",
      "bert/next_sentence/kernel:0",
  }
  assert expected <= names, sorted(expected - names)
  # No bare names: every variable sits under a layer's scope.
  assert all(name.count("/") >= 1 for name in names), sorted(names)[:5]
  per_block = [n for n in names if n.startswith(block + "/")]
  assert len(per_block) == len(
      pretrainer.encoder_network.transformer_layers[1].variables)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["input_word_ids"].__setitem__((0, 1), 64), "vocab_size"),
    (lambda d: d["input_word_ids"].__setitem__((0, 1), -1), "input_word_ids"),
    (lambda d: d["input_type_ids"].__setitem__((0, 1), 2), "type_vocab_size"),
], ids=["id-too-large", "negative-id", "type-id"])
def test_out_of_range_ids_are_named(tiny_config, tiny_inputs, change, message):
  encoder = build_encoder(tiny_config)
  inputs = {k: v.copy() for k, v in _encoder_inputs(tiny_inputs).items()}
  change(inputs)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    encoder(inputs)
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    tf.function(encoder)(inputs)


def test_too_long_and_mismatched_inputs(tiny_config):
  encoder = build_encoder(tiny_config)
  long = _encoder_inputs(make_encoder_inputs(tiny_config, batch=1, seq=33))
  with pytest.raises(ValueError, match="max_position_embeddings"):
    encoder(long)
  # With an unknown static length the check happens at run time.
  run = tf.function(encoder, input_signature=[{
      k: tf.TensorSpec([None, None], tf.int32) for k in ENCODER_INPUTS}])
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="max_position_embeddings"):
    run(long)
  inputs = _encoder_inputs(make_encoder_inputs(tiny_config, batch=2, seq=6))
  inputs["input_mask"] = inputs["input_mask"][:, :5]
  with pytest.raises(ValueError, match="input_mask"):
    encoder(inputs)
  with pytest.raises(tf.errors.InvalidArgumentError, match="input_mask"):
    run(inputs)


def test_english_opt_parameter_counts():
  config = MobileBertConfig.from_preset("uncased_L-24_H-128_B-512_A-4_F-4_OPT")
  pretrainer = build_pretrainer(config)
  # The count tf-models-official and transformers both give.
  assert pretrainer.encoder_network.count_params() == 24_581_888
  assert pretrainer.count_params() == 36_596_538


def test_checkpoints_interchange_with_tf_models_official(tiny_config,
                                                         tiny_inputs, tmp_path):
  config = tiny_config.replace(classifier_activation=True)
  theirs = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  rng = np.random.default_rng(0)
  for variable in theirs.weights:
    variable.assign(rng.normal(0.5, 0.2, variable.shape))
  path = tf.train.Checkpoint(**theirs.checkpoint_items).save(
      str(tmp_path / "theirs"))
  ours = build_pretrainer(config)
  status = tf.train.Checkpoint(**ours.checkpoint_items).restore(path)
  status.assert_existing_objects_matched()
  status.assert_consumed()
  a, b = ours(tiny_inputs), theirs(tiny_inputs)
  for key in ("sequence_output", "pooled_output", "mlm_logits"):
    assert relative_error(a[key], b[key]) <= 1e-5, key

  path = tf.train.Checkpoint(**ours.checkpoint_items).save(
      str(tmp_path / "ours"))
  back = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  status = tf.train.Checkpoint(**back.checkpoint_items).restore(path)
  status.assert_existing_objects_matched()
  status.assert_consumed()
  assert relative_error(back(tiny_inputs)["mlm_logits"],
                         a["mlm_logits"]) <= 1e-5


def test_model_utils_snippet(tiny_config, tmp_path):
  """tf-models-official's documented snippet, with only the import changed."""
  config_path = tmp_path / "bert_config.json"
  config_path.write_text(tiny_config.to_json_string())
  source = build_pretrainer(tiny_config)
  ckpt = tf.train.Checkpoint(**source.checkpoint_items).save(
      str(tmp_path / "ckpt"))

  bert_config = model_utils.BertConfig.from_json_file(str(config_path))
  pretrainer = model_utils.create_mobilebert_pretrainer(bert_config)
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items)
  checkpoint.restore(ckpt).assert_existing_objects_matched()
  for a, b in zip(pretrainer.weights, source.weights):
    np.testing.assert_array_equal(a, b)
  # tf-models-official's own config object is accepted too.
  theirs = tfm_model_utils.BertConfig.from_dict(dict(TINY_CONFIG))
  assert model_utils.create_mobilebert_pretrainer(theirs).count_params() == (
      pretrainer.count_params())
