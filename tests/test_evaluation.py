"""Tests for `training.evaluation`: masked-LM metrics."""

import numpy as np
import pytest

from training import evaluation
from training import pretraining_data as pd


class _FixedLogits:
  """A stand-in pretrainer: the logits of each example, whatever the input."""

  def __init__(self, logits):
    self.logits = np.asarray(logits, np.float32)
    self.calls = 0

  def __call__(self, inputs, training=None):
    assert training is False
    rows = inputs["input_word_ids"].numpy()[:, 0]  # Row index stored there.
    self.calls += 1
    return {"mlm_logits": self.logits[rows]}


def _batch(labels, weights):
  n, p = np.shape(labels)
  zeros = np.zeros([n, 4], np.int32)
  return pd.Batch(
      input_word_ids=zeros + np.arange(n, dtype=np.int32)[:, None],
      input_mask=zeros + 1, input_type_ids=zeros,
      masked_lm_positions=np.zeros([n, p], np.int32),
      masked_lm_ids=np.asarray(labels, np.int32),
      masked_lm_weights=np.asarray(weights, np.float32),
      next_sentence_labels=np.zeros([n], np.int32))


def test_metrics_equal_a_direct_computation():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 3, 11)) * 3
  labels = rng.integers(0, 11, (5, 3))
  labels[2] = logits[2].argmax(-1)  # Some hits, so top-1 is not 0.
  weights = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
  model = _FixedLogits(logits)
  got = evaluation.masked_lm_metrics(model, _batch(labels, weights),
                                     batch_size=2, top_k=(1, 3))
  assert model.calls == 3
  real = weights > 0
  rank = (logits > np.take_along_axis(logits, labels[..., None], -1)).sum(-1)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
  assert got["count"] == real.sum() == 8
  assert got["top1"] == pytest.approx((rank[real] < 1).mean())
  assert got["top3"] == pytest.approx((rank[real] < 3).mean())
  assert got["loss"] == pytest.approx(-picked[real].mean(), rel=1e-5)
  assert 0 < got["top1"] < got["top3"] < 1


def test_perfect_and_hopeless_predictions():
  labels = np.array([[2, 0], [1, 1]])
  logits = np.full((2, 2, 3), -20.0)
  np.put_along_axis(logits, labels[..., None], 20.0, -1)
  batch = _batch(labels, np.ones((2, 2)))
  perfect = evaluation.masked_lm_metrics(_FixedLogits(logits), batch)
  assert perfect["top1"] == perfect["top5"] == 1.0
  assert perfect["loss"] == pytest.approx(0.0, abs=1e-12)
  hopeless = evaluation.masked_lm_metrics(_FixedLogits(-logits), batch,
                                          top_k=(1, 2, 3))
  assert hopeless["top1"] == hopeless["top2"] == 0.0
  assert hopeless["top3"] == 1.0
  assert hopeless["loss"] == pytest.approx(40 + np.log(2), rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(top_k=()), "top_k"), (dict(top_k=(0,)), "top_k"),
    (dict(batch_size=0), "batch_size"),
], ids=["no_k", "zero_k", "zero_batch"])
def test_bad_arguments(kwargs, message):
  batch = _batch([[1]], [[1]])
  with pytest.raises(ValueError, match=message):
    evaluation.masked_lm_metrics(_FixedLogits(np.zeros((1, 1, 3))), batch,
                                 **kwargs)


def test_no_predictions():
  with pytest.raises(ValueError, match="no masked-LM prediction"):
    evaluation.masked_lm_metrics(_FixedLogits(np.zeros((1, 1, 3))),
                                 _batch([[1]], [[0]]))
