"""training.pretraining_losses against NumPy twins of the original formulas.

The twins spell out google-research/bert's `get_masked_lm_output` and
`get_next_sentence_output` (log-softmax, one-hot labels, weighted sum over
sum of weights + 1e-5; mean over examples). The replica tests split one
batch into two halves, as two replicas would hold it, and check that the
halves' losses and gradients sum to the whole batch's.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import numpy as np
import pytest
import tensorflow as tf

from training import pretraining_losses

BATCH, PREDICTIONS, VOCAB = 6, 5, 11


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _twin_masked_lm_loss(ids, weights, logits, weight_sum=None):
  """The original's formula, with one-hot labels."""
  one_hot = np.eye(logits.shape[-1])[ids]
  per_position = -(one_hot * _log_softmax(logits)).sum(-1)
  weights = np.asarray(weights, np.float64)
  if weight_sum is None:
    weight_sum = weights.sum()
  return (weights * per_position).sum() / (weight_sum + 1e-5)


def _twin_next_sentence_loss(labels, logits, batch_size=None):
  labels = np.reshape(labels, [-1])
  one_hot = np.eye(2)[labels]
  per_example = -(one_hot * _log_softmax(logits)).sum(-1)
  return per_example.sum() / (len(labels) if batch_size is None
                              else batch_size)


def _batch(seed=0, batch=BATCH):
  """A batch with padded predictions (weight 0, id 0), as in the records."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, VOCAB, size=(batch, PREDICTIONS)).astype(np.int32)
  weights = np.ones((batch, PREDICTIONS), np.float32)
  for row in range(batch):
    weights[row, PREDICTIONS - 1 - row % PREDICTIONS:] = 0.0
  ids[weights == 0] = 0
  features = dict(
      masked_lm_ids=ids, masked_lm_weights=weights,
      next_sentence_labels=rng.integers(0, 2, size=(batch, 1)).astype(
          np.int32))
  outputs = dict(
      mlm_logits=(3 * rng.normal(size=(batch, PREDICTIONS, VOCAB))).astype(
          np.float32),
      next_sentence=rng.normal(size=(batch, 2)).astype(np.float32))
  return features, outputs


# === The formulas ===


def test_masked_lm_loss_is_the_originals():
  features, outputs = _batch()
  ids, weights = features["masked_lm_ids"], features["masked_lm_weights"]
  loss = pretraining_losses.masked_lm_loss(ids, weights,
                                           outputs["mlm_logits"])
  assert loss.dtype == tf.float32 and loss.shape == ()
  np.testing.assert_allclose(
      float(loss), _twin_masked_lm_loss(ids, weights, outputs["mlm_logits"]),
      rtol=1e-6)
  # An explicit (global) weight sum replaces this batch's.
  loss = pretraining_losses.masked_lm_loss(ids, weights,
                                           outputs["mlm_logits"], 40.0)
  np.testing.assert_allclose(
      float(loss),
      _twin_masked_lm_loss(ids, weights, outputs["mlm_logits"], 40.0),
      rtol=1e-6)


def test_masked_lm_loss_ignores_zero_weight_positions():
  features, outputs = _batch()
  ids, weights = features["masked_lm_ids"], features["masked_lm_weights"]
  assert (weights == 0).any()
  loss = pretraining_losses.masked_lm_loss(ids, weights,
                                           outputs["mlm_logits"])
  rng = np.random.default_rng(1)
  changed_ids, changed_logits = ids.copy(), outputs["mlm_logits"].copy()
  padding = weights == 0
  changed_ids[padding] = rng.integers(0, VOCAB, size=padding.sum())
  changed_logits[padding] = 100 * rng.normal(size=(padding.sum(), VOCAB))
  changed = pretraining_losses.masked_lm_loss(changed_ids, weights,
                                              changed_logits)
  assert float(changed) == float(loss)


def test_masked_lm_loss_divides_by_weight_sum_plus_epsilon():
  features, outputs = _batch()
  ids, logits = features["masked_lm_ids"], outputs["mlm_logits"]
  # One prediction of weight 1e-5: w * CE / (1e-5 + 1e-5) = CE / 2.
  weights = np.zeros_like(features["masked_lm_weights"])
  weights[0, 0] = 1e-5
  ce = -_log_softmax(logits[0, 0])[ids[0, 0]]
  np.testing.assert_allclose(
      float(pretraining_losses.masked_lm_loss(ids, weights, logits)), ce / 2,
      rtol=1e-6)
  # An all-padding batch gives 0, not NaN.
  assert float(pretraining_losses.masked_lm_loss(
      ids, np.zeros_like(weights), logits)) == 0.0


@pytest.mark.parametrize("label_shape", [(BATCH,), (BATCH, 1)],
                         ids=["rank1", "rank2"])
def test_next_sentence_loss_is_the_originals(label_shape):
  features, outputs = _batch()
  labels = features["next_sentence_labels"].reshape(label_shape)
  logits = outputs["next_sentence"]
  loss = pretraining_losses.next_sentence_loss(labels, logits)
  assert loss.dtype == tf.float32 and loss.shape == ()
  np.testing.assert_allclose(float(loss),
                             _twin_next_sentence_loss(labels, logits),
                             rtol=1e-6)
  np.testing.assert_allclose(
      float(pretraining_losses.next_sentence_loss(labels, logits, 16)),
      _twin_next_sentence_loss(labels, logits, 16), rtol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_logits_give_float32_losses(dtype):
  features, outputs = _batch()
  low = {k: tf.cast(v, dtype) for k, v in outputs.items()}
  result = pretraining_losses.pretraining_loss(features, low)
  rounded = {k: tf.cast(v, tf.float32).numpy() for k, v in low.items()}
  for value in result.values():
    assert value.dtype == tf.float32
  np.testing.assert_allclose(
      float(result["masked_lm_loss"]),
      _twin_masked_lm_loss(features["masked_lm_ids"],
                           features["masked_lm_weights"],
                           rounded["mlm_logits"]), rtol=1e-6)


def test_pretraining_loss_is_the_sum_of_both():
  features, outputs = _batch()
  result = pretraining_losses.pretraining_loss(features, outputs)
  assert sorted(result) == ["loss", "masked_lm_loss", "next_sentence_loss"]
  mlm = _twin_masked_lm_loss(features["masked_lm_ids"],
                             features["masked_lm_weights"],
                             outputs["mlm_logits"])
  nsp = _twin_next_sentence_loss(features["next_sentence_labels"],
                                 outputs["next_sentence"])
  np.testing.assert_allclose(float(result["masked_lm_loss"]), mlm, rtol=1e-6)
  np.testing.assert_allclose(float(result["next_sentence_loss"]), nsp,
                             rtol=1e-6)
  np.testing.assert_allclose(float(result["loss"]), mlm + nsp, rtol=1e-6)
  # Without the NSP head (tf-models-official's pretrainer): masked LM only.
  result = pretraining_losses.pretraining_loss(
      features, dict(mlm_logits=outputs["mlm_logits"]))
  assert sorted(result) == ["loss", "masked_lm_loss"]
  np.testing.assert_allclose(float(result["loss"]), mlm, rtol=1e-6)


# === Replicas ===


class _TwoReplicaContext:
  """A replica context whose other replica holds `other`'s totals.

  Its `all_reduce(SUM, values)` adds the other half's weight sum and batch
  size: what `pretraining_loss` would receive from a real second replica.
  """

  def __init__(self, other_features):
    self.totals = [
        float(np.sum(other_features["masked_lm_weights"])),
        float(np.size(other_features["next_sentence_labels"]))]
    self.calls = 0

  def all_reduce(self, reduce_op, values):
    assert reduce_op == tf.distribute.ReduceOp.SUM
    self.calls += 1
    return [v + t for v, t in zip(values, self.totals)]


def _halves(features):
  half = BATCH // 2
  return ({k: v[:half] for k, v in features.items()},
          {k: v[half:] for k, v in features.items()})


def _tiny_model_loss(variables, features, hidden, replica_context=None,
                     **global_sizes):
  """Losses of logits from a tiny linear model, and their gradients."""
  mlm_kernel, nsp_kernel = variables
  with tf.GradientTape() as tape:
    outputs = dict(mlm_logits=tf.einsum("bph,hv->bpv", hidden[0], mlm_kernel),
                   next_sentence=tf.matmul(hidden[1], nsp_kernel))
    if global_sizes:
      losses = dict(masked_lm_loss=pretraining_losses.masked_lm_loss(
          features["masked_lm_ids"], features["masked_lm_weights"],
          outputs["mlm_logits"], global_sizes["weight_sum"]))
      losses["next_sentence_loss"] = pretraining_losses.next_sentence_loss(
          features["next_sentence_labels"], outputs["next_sentence"],
          global_sizes["batch_size"])
      losses["loss"] = (losses["masked_lm_loss"]
                        + losses["next_sentence_loss"])
    else:
      losses = pretraining_losses.pretraining_loss(features, outputs,
                                                   replica_context)
  return losses, tape.gradient(losses["loss"], variables)


@pytest.fixture(name="tiny_model")
def _tiny_model():
  rng = np.random.default_rng(2)
  variables = [tf.Variable(rng.normal(size=(4, VOCAB)).astype(np.float32)),
               tf.Variable(rng.normal(size=(3, 2)).astype(np.float32))]
  hidden = (rng.normal(size=(BATCH, PREDICTIONS, 4)).astype(np.float32),
            rng.normal(size=(BATCH, 3)).astype(np.float32))
  return variables, hidden


def _split_hidden(hidden):
  half = BATCH // 2
  return ([h[:half] for h in hidden], [h[half:] for h in hidden])


def test_halves_with_global_sizes_sum_to_the_whole_batch(tiny_model):
  variables, hidden = tiny_model
  features, _ = _batch()
  whole, whole_grads = _tiny_model_loss(variables, features, hidden)
  first, second = _halves(features)
  sizes = dict(weight_sum=float(features["masked_lm_weights"].sum()),
               batch_size=BATCH)
  # The halves hold different numbers of real predictions: a per-half mean
  # would weigh them unequally.
  assert first["masked_lm_weights"].sum() != second["masked_lm_weights"].sum()
  hidden_1, hidden_2 = _split_hidden(hidden)
  loss_1, grads_1 = _tiny_model_loss(variables, first, hidden_1, **sizes)
  loss_2, grads_2 = _tiny_model_loss(variables, second, hidden_2, **sizes)
  for key in whole:
    np.testing.assert_allclose(float(loss_1[key] + loss_2[key]),
                               float(whole[key]), rtol=1e-6)
  for g, g1, g2 in zip(whole_grads, grads_1, grads_2):
    np.testing.assert_allclose((g1 + g2).numpy(), g.numpy(), rtol=1e-5,
                               atol=1e-7)


def test_pretraining_loss_all_reduces_the_sizes_over_replicas(tiny_model):
  variables, hidden = tiny_model
  features, _ = _batch()
  whole, whole_grads = _tiny_model_loss(variables, features, hidden)
  first, second = _halves(features)
  hidden_1, hidden_2 = _split_hidden(hidden)
  context_1, context_2 = _TwoReplicaContext(second), _TwoReplicaContext(first)
  loss_1, grads_1 = _tiny_model_loss(variables, first, hidden_1, context_1)
  loss_2, grads_2 = _tiny_model_loss(variables, second, hidden_2, context_2)
  assert context_1.calls == context_2.calls == 1
  for key in whole:
    np.testing.assert_allclose(float(loss_1[key] + loss_2[key]),
                               float(whole[key]), rtol=1e-6)
  for g, g1, g2 in zip(whole_grads, grads_1, grads_2):
    np.testing.assert_allclose((g1 + g2).numpy(), g.numpy(), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("strategy_name", ["default", "one_device"])
def test_in_a_strategy_one_replica_gets_the_whole_batch_loss(strategy_name):
  features, outputs = _batch()
  strategy = (tf.distribute.get_strategy() if strategy_name == "default"
              else tf.distribute.OneDeviceStrategy("/cpu:0"))
  @tf.function
  def step():
    return strategy.run(pretraining_losses.pretraining_loss,
                        args=(features, outputs))
  result = step()
  expected = pretraining_losses.pretraining_loss(features, outputs)
  for key, value in expected.items():
    reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, result[key], None)
    np.testing.assert_allclose(float(reduced), float(value), rtol=1e-6)
