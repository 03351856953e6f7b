"""Per-layer tests: shapes, config round trips, weights, a training step."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from mobilebert_tf import MobileBertEmbedding
from mobilebert_tf import MobileBertMaskedLM
from mobilebert_tf import MobileBertTransformer
from mobilebert_tf import NoNorm
from mobilebert_tf import get_norm_layer
from mobilebert_tf import layers


def _round_trip(layer):
  config = layer.get_config()
  json.dumps(config)  # JSON-serializable
  clone = type(layer).from_config(config)
  assert clone.get_config() == config
  # Through Keras' registry too (the registered name is ours, not Model
  # Garden's `Text>...`).
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(layer))
  assert type(restored) is type(layer)
  return clone


def test_no_norm_is_an_elementwise_affine_map():
  layer = NoNorm()
  x = tf.random.normal([2, 3, 4])
  layer(x)
  layer.gamma.assign([1.0, 2.0, 3.0, 4.0])
  layer.beta.assign([0.5, 0.0, -1.0, 2.0])
  np.testing.assert_allclose(layer(x), x * layer.gamma + layer.beta)
  assert [w.name.split("/")[-1] for w in layer.weights] == ["beta:0", "gamma:0"]
  _round_trip(layer)


@pytest.mark.parametrize("kind, epsilon", [
    ("layer_norm", 1e-12), ("manual_layer_norm", 1e-6)])
def test_layer_norm_epsilons(kind, epsilon):
  assert get_norm_layer(kind).epsilon == epsilon


def test_unknown_norm_lists_the_choices():
  with pytest.raises(ValueError, match="no_norm"):
    get_norm_layer("batch_norm")


EMBEDDING_CASES = {
    "trigram": dict(trigram_input=True, word_embed_size=8),
    "projection": dict(trigram_input=False, word_embed_size=8),
    "plain": dict(trigram_input=False, word_embed_size=16),
}


@pytest.mark.parametrize("case", sorted(EMBEDDING_CASES))
def test_embedding(case):
  kwargs = EMBEDDING_CASES[case]
  layer = MobileBertEmbedding(
      word_vocab_size=20, type_vocab_size=2, output_embed_size=16,
      max_sequence_length=10, normalization_type="layer_norm", **kwargs)
  ids = tf.constant([[1, 2, 3, 4], [5, 6, 0, 0]])
  out = layer(ids, tf.zeros_like(ids))
  assert out.shape == (2, 4, 16)
  expected = 20 * kwargs["word_embed_size"] + 2 * 16 + 10 * 16 + 2 * 16
  if case != "plain":
    width = kwargs["word_embed_size"] * (3 if kwargs["trigram_input"] else 1)
    expected += width * 16 + 16
  assert layer.count_params() == expected
  assert (layer.word_embedding_proj is None) == (case == "plain")
  clone = _round_trip(layer)
  assert clone(ids).shape == (2, 4, 16)


def test_trigram_concatenates_next_self_previous():
  layer = MobileBertEmbedding(
      word_vocab_size=5, word_embed_size=2, type_vocab_size=1,
      output_embed_size=6, max_sequence_length=4, dropout_rate=0.0)
  ids = tf.constant([[1, 2, 3]])
  layer(ids)
  table = np.arange(10, dtype=np.float32).reshape(5, 2) + 1
  layer.word_embedding.embeddings.assign(table)
  layer.word_embedding_proj.kernel.assign(np.eye(6, dtype=np.float32))
  layer.word_embedding_proj.bias.assign(np.zeros(6, np.float32))
  layer.pos_embedding.embeddings.assign(np.zeros([4, 6], np.float32))
  words = layer(ids)[0].numpy()  # NoNorm with gamma 1, beta 0: identity
  e = table[[1, 2, 3]]
  zero = np.zeros(2, np.float32)
  np.testing.assert_allclose(words[0], np.concatenate([e[1], e[0], zero]))
  np.testing.assert_allclose(words[1], np.concatenate([e[2], e[1], e[0]]))
  np.testing.assert_allclose(words[2], np.concatenate([zero, e[2], e[1]]))


TRANSFORMER_CASES = {
    "kq_shared": dict(key_query_shared_bottleneck=True),
    "bottleneck_attention": dict(use_bottleneck_attention=True),
    "plain_bottleneck": dict(key_query_shared_bottleneck=False),
    "no_bottleneck": dict(use_bottleneck=False, normalization_type="layer_norm",
                          intermediate_act_fn="gelu"),
}


@pytest.mark.parametrize("case", sorted(TRANSFORMER_CASES))
def test_transformer(case):
  kwargs = dict(hidden_size=16, num_attention_heads=2, intermediate_size=12,
                intra_bottleneck_size=8, num_feedforward_networks=2,
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
  kwargs.update(TRANSFORMER_CASES[case])
  layer = MobileBertTransformer(**kwargs)
  x = tf.random.normal([2, 5, 16])
  mask = tf.constant([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
  out, scores = layer(x, mask, return_attention_scores=True)
  assert out.shape == (2, 5, 16)
  assert scores.shape == (2, 2, 5, 5)
  # Padded keys get no attention at all.
  np.testing.assert_array_equal(scores[1, :, :, 3:], 0.0)
  # Symbolic call.
  symbolic = layer(tf_keras.Input([None, 16]), tf_keras.Input([None], dtype="int32"))
  assert symbolic.shape.as_list() == [None, None, 16]
  # Inference is deterministic; training applies dropout.
  np.testing.assert_array_equal(layer(x, mask), layer(x, mask, training=False))
  assert not np.allclose(layer(x, mask, training=True), layer(x, mask))
  # Named accessors read the checkpoint layout.
  assert len(layer.feedforward_networks) == 2
  assert (layer.bottleneck_input is None) == (case == "no_bottleneck")
  assert (layer.kq_shared_bottleneck is not None) == (case == "kq_shared")
  clone = _round_trip(layer)
  assert clone(x, mask).shape == out.shape
  assert clone.count_params() == layer.count_params()


def _block(**kwargs):
  return MobileBertTransformer(
      hidden_size=16, num_attention_heads=2, intermediate_size=12,
      intra_bottleneck_size=8, num_feedforward_networks=2, **kwargs)


@pytest.mark.parametrize("mask_kind", ["none", "2d", "3d", "4d"])
@pytest.mark.parametrize("seq", [1, 2, 7])
def test_heads_first_layout_equals_standard(mask_kind, seq):
  """The opt-in heads-first layout (two chains, one per half of the
  sequence, at inference) computes what the standard layout computes: every
  mask form, odd lengths and a length of 1 (an empty first half); outputs,
  probabilities and masked logits."""
  # No dropout, so that the training step (one heads-first chain) compares.
  no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  standard = _block(**no_dropout)
  heads_first = _block(attention_layout="heads_first", **no_dropout)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(2, seq, 16)), tf.float32)
  standard(x)
  heads_first(x)
  heads_first.set_weights(standard.get_weights())
  keep = np.ones((2, seq), np.int32)
  keep[1, seq // 2 + 1:] = 0
  mask = {"none": None, "2d": tf.constant(keep),
          "3d": tf.constant(keep[:, np.newaxis, :] * np.tril(
              np.ones((seq, seq), np.int32))),
          "4d": tf.constant(keep[:, np.newaxis, np.newaxis, :], tf.float32),
         }[mask_kind]
  mask_spec = None if mask is None else tf.TensorSpec(
      [None] * mask.shape.rank, mask.dtype)  # from-length unknown when traced

  def run(layer, training=False):
    call = lambda x, mask=None: layer(  # pylint: disable=g-long-lambda
        x, mask, return_attention_scores=True, return_attention_logits=True,
        training=training)
    if mask is None:
      return tf.function(call)(x)
    return tf.function(call, input_signature=[
        tf.TensorSpec([None, None, 16]), mask_spec])(x, mask)

  want = run(standard)
  for training in (False, True):  # two chains, then the one-chain step
    got = run(heads_first, training=training)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
      assert g.shape == w.shape
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_layout_is_explicit_and_serialized():
  block = _block(attention_layout="heads_first")
  assert block.get_config()["attention_layout"] == "heads_first"
  assert _round_trip(block).attention_layout == "heads_first"
  assert _block().get_config()["attention_layout"] == "standard"
  with pytest.raises(ValueError, match="attention_layout"):
    _block(attention_layout="converter")
  with pytest.raises(ValueError, match="attention_mask_rule"):
    _block(attention_mask_rule="minus_infinity")


def test_key_mask_shapes_and_rank_4_passes_through():
  mask = np.array([[1, 2, 0]], np.int32)
  np.testing.assert_array_equal(layers.key_mask(mask, tf.float32),
                                [[[[1.0, 1.0, 0.0]]]])
  pairs = layers.key_mask(np.ones([1, 3, 3]), tf.float16)
  assert pairs.shape == (1, 1, 3, 3) and pairs.dtype == tf.float16
  # A rank-4 mask is what key_mask made (0/1): it is only cast.
  ready = np.array([[[[1.0, 0.0, 1.0]]]], np.float32)
  np.testing.assert_array_equal(layers.key_mask(ready, tf.float16), ready)
  with pytest.raises(ValueError, match="rank 2, 3 or 4"):
    layers.key_mask(np.ones([3]), tf.float32)


@pytest.mark.parametrize("rule", ["exclude", "additive",
                                  "quantization_friendly"])
def test_mask_is_binarized(rule):
  """Any nonzero mask value attends: 2 (or 0.5) means what 1 means."""
  block = _block(attention_mask_rule=rule)
  x = tf.random.stateless_normal([2, 5, 16], seed=[0, 1])
  keep = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)
  want = block(x, keep, return_attention_logits=True)
  for other in (keep * 2, keep.astype(np.float32) * 0.5):
    got = block(x, other, return_attention_logits=True)
    for g, w in zip(got, want):
      np.testing.assert_array_equal(g, w)
  # Padded keys are what the rule sets them to.
  logits = want[1].numpy()[1, :, :, 3:]
  if rule == "exclude":
    np.testing.assert_allclose(logits, -1e9, rtol=1e-6)
  elif rule == "additive":  # score - 10000, the scores here are O(1)
    assert np.all(np.abs(logits + 10000.0) < 100.0)
  else:
    np.testing.assert_array_equal(logits, -6.0)


@pytest.mark.slow  # a learning test
def test_transformer_training_step_reduces_loss():
  tf_keras.utils.set_random_seed(0)
  layer = MobileBertTransformer(hidden_size=16, num_attention_heads=2,
                                intermediate_size=12, intra_bottleneck_size=8,
                                num_feedforward_networks=2,
                                hidden_dropout_prob=0.0,
                                attention_probs_dropout_prob=0.0)
  x = tf.random.stateless_normal([4, 6, 16], seed=[1, 2])
  target = tf.random.stateless_normal([4, 6, 16], seed=[3, 4])
  optimizer = tf_keras.optimizers.Adam(1e-2)
  losses = []
  for _ in range(30):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(layer(x, training=True) - target))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, layer.trainable_variables))
    losses.append(float(loss))
  assert losses[-1] < 0.5 * losses[0]


def test_transformer_rejects_heads_that_do_not_divide():
  with pytest.raises(ValueError, match="divisible"):
    MobileBertTransformer(hidden_size=16, intra_bottleneck_size=10,
                          num_attention_heads=4)


def test_transformer_rejects_wrong_input_width():
  layer = MobileBertTransformer(hidden_size=16, num_attention_heads=2,
                                intra_bottleneck_size=8)
  with pytest.raises(ValueError, match="hidden_size"):
    layer(tf.zeros([1, 3, 12]))


def test_masked_lm_with_extra_output_weights():
  table = tf.Variable(tf.random.normal([30, 8]))
  layer = MobileBertMaskedLM(table, activation="relu")
  sequence = tf.random.normal([2, 6, 16])
  positions = tf.constant([[0, 5], [2, 3]])
  logits = layer(sequence, positions)
  assert logits.shape == (2, 2, 30) and logits.dtype == tf.float32
  assert layer.extra_output_weights.shape == (30, 8)
  # By hand: transform, layer norm, widened table.
  hidden = layer.layer_norm(tf.nn.relu(layer.dense(
      tf.gather(sequence, positions, batch_dims=1))))
  full = tf.concat([table, layer.extra_output_weights], axis=1)
  np.testing.assert_allclose(
      logits, tf.matmul(hidden, full, transpose_b=True) + layer.bias,
      rtol=1e-5, atol=1e-5)
  clone = _round_trip(layer)
  assert clone(sequence, positions).shape == (2, 2, 30)


def test_masked_lm_without_extra_weights_and_bad_widths():
  table = tf.Variable(tf.random.normal([30, 16]))
  layer = MobileBertMaskedLM(table, output="predictions")
  log_probs = layer(tf.random.normal([1, 4, 16]), tf.constant([[1]]))
  assert layer.extra_output_weights is None
  np.testing.assert_allclose(tf.reduce_sum(tf.exp(log_probs), -1), 1.0,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="smaller"):
    MobileBertMaskedLM(table)(tf.zeros([1, 4, 8]), tf.constant([[0]]))
  with pytest.raises(ValueError, match="output"):
    MobileBertMaskedLM(table, output="probabilities")
