"""training.distillation_losses against NumPy twins of the original formulas.

The twins spell out google-research `mobilebert/run_pretraining.py`
(`model_fn`) in float64: `tf.losses.mean_squared_error` of contrib
`layer_norm` outputs (scale 1, offset 0, epsilon 1e-12), the attention
"KL" `reduce_mean(reduce_sum(-softmax(t) * log_softmax(s), -1))`, the
mean/variance losses (per block, the intended reading of its
`teacher_hiddens` typo), the soft-label masked LM, and the layer loops
`factor * sum(gate * term) / num_layers`. Attention maps are masked
pre-softmax scores with padded keys (and padded query rows, which the
original keeps). The replica tests split one batch in two halves, as two
replicas would hold it, and check that the halves' losses sum (and their
gradients concatenate) to the whole batch's.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import threading

import numpy as np
import pytest
import tensorflow as tf

from training import distillation_losses as dl
from training import pretraining_losses

BATCH, SEQ, HIDDEN, HEADS = 4, 6, 8, 2
PREDICTIONS, VOCAB = 5, 11
TEACHER_BLOCKS, STUDENT_BLOCKS = 4, 2
TEACHER_LAYERS = (1, 3)
RTOL = 1e-5

# === NumPy twins of the original (float64) ===


def _f64(x):
  return np.asarray(x, np.float64)


def _log_softmax(x):
  x = _f64(x)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _softmax(x):
  return np.exp(_log_softmax(x))


def _contrib_layer_norm(x):
  # nn.moments over the last axis, nn.batch_normalization(scale=1, offset=0,
  # variance_epsilon=1e-12).
  x = _f64(x)
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + 1e-12)


def _twin_feature_map(teacher, student):
  # tf.losses.mean_squared_error, weights 1: the mean over every element.
  return ((_contrib_layer_norm(teacher) - _contrib_layer_norm(student))
          ** 2).mean()


def _twin_attention(teacher, student):
  kl = -(_softmax(teacher) * _log_softmax(student))
  return kl.sum(-1).mean()


def _twin_mean_variance(teacher, student):
  teacher, student = _f64(teacher), _f64(student)
  teacher_mean = teacher.mean(-1, keepdims=True)
  student_mean = student.mean(-1, keepdims=True)
  teacher_variance = ((teacher - teacher_mean) ** 2).mean(-1, keepdims=True)
  student_variance = ((student - student_mean) ** 2).mean(-1, keepdims=True)
  return (((teacher_mean - student_mean) ** 2).mean(),
          np.abs(teacher_variance - student_variance).mean())


def _twin_layer_transfer(teacher, student, mapping, gates, factors):
  """The original's four loops, teacher blocks picked by `mapping`."""
  extra = dict(feature_map_transfer_loss=0.0, attention_transfer_loss=0.0,
               mean_transfer_loss=0.0, variance_transfer_loss=0.0)
  pairs = [(teacher["encoder_outputs"][t], student["encoder_outputs"][i])
           for i, t in enumerate(mapping)]
  if factors.hidden != 0.0:
    layer_id = 0
    for t, s in pairs:
      extra["feature_map_transfer_loss"] += (
          gates[layer_id] * _twin_feature_map(t, s))
      layer_id += 1
    extra["feature_map_transfer_loss"] *= factors.hidden / layer_id
  if factors.beta != 0 and factors.gamma != 0.0:
    layer_id = 0
    for t, s in pairs:
      beta_loss, gamma_loss = _twin_mean_variance(t, s)
      extra["mean_transfer_loss"] += gates[layer_id] * beta_loss
      extra["variance_transfer_loss"] += gates[layer_id] * gamma_loss
      layer_id += 1
    extra["mean_transfer_loss"] *= factors.beta / layer_id
    extra["variance_transfer_loss"] *= factors.gamma / layer_id
  if factors.attention != 0.0:
    layer_id = 0
    for i, t in enumerate(mapping):
      extra["attention_transfer_loss"] += gates[layer_id] * _twin_attention(
          teacher["attention_logits"][t], student["attention_logits"][i])
      layer_id += 1
    extra["attention_transfer_loss"] *= factors.attention / layer_id
  extra["loss"] = sum(extra.values())
  return extra


def _twin_soft_mlm(ids, weights, student_logits, teacher_logits, ratio):
  true_labels = np.eye(VOCAB)[ids]
  labels = (true_labels if ratio == 1.0 else
            _softmax(teacher_logits) * (1 - ratio) + true_labels * ratio)
  per_example = -(_log_softmax(student_logits) * labels).sum(-1)
  weights = _f64(weights)
  return (weights * per_example).sum() / (weights.sum() + 1e-5)


def _twin_next_sentence(labels, logits):
  one_hot = np.eye(2)[np.reshape(labels, [-1])]
  return (-(one_hot * _log_softmax(logits)).sum(-1)).mean()


# === Random inputs with padding ===

LENGTHS = (SEQ, 4, 3, 5)  # real tokens per example; the rest is padding


def _key_mask():
  return (np.arange(SEQ)[None, :] < np.array(LENGTHS)[:, None]).astype(
      np.float32)


def _masked_scores(rng, rule="additive"):
  """Scaled scores masked as the encoder's rules do: `[b, h, q, k]`."""
  scores = 2 * rng.normal(size=(BATCH, HEADS, SEQ, SEQ))
  mask = _key_mask()[:, None, None, :]
  if rule == "additive":  # the original 2020 release
    return (scores + (1 - mask) * -10000.0).astype(np.float32)
  if rule == "quantization_friendly":  # the 2021 revision
    return (scores * mask + (1 - mask) * -6.0).astype(np.float32)
  return (scores + (1 - mask) * -1e9).astype(np.float32)  # "exclude"


def _encoder_outputs(rng, blocks, scale, offset, rule="additive"):
  return dict(
      encoder_outputs=[
          (scale * rng.normal(size=(BATCH, SEQ, HIDDEN)) + offset * (b + 1)
           ).astype(np.float32) for b in range(blocks)],
      attention_logits=[_masked_scores(rng, rule) for _ in range(blocks)])


def _pair(seed=0, rule="additive"):
  """Teacher (4 blocks, larger no-norm-like activations) and student (2)."""
  rng = np.random.default_rng(seed)
  return (_encoder_outputs(rng, TEACHER_BLOCKS, 20.0, 3.0, rule),
          _encoder_outputs(rng, STUDENT_BLOCKS, 1.0, 0.5, rule))


def _mlm_batch(seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, VOCAB, size=(BATCH, PREDICTIONS)).astype(np.int32)
  weights = np.ones((BATCH, PREDICTIONS), np.float32)
  for row in range(BATCH):
    weights[row, PREDICTIONS - 1 - row:] = 0.0  # halves differ in sum(w)
  ids[weights == 0] = 0
  features = dict(masked_lm_ids=ids, masked_lm_weights=weights,
                  next_sentence_labels=rng.integers(
                      0, 2, size=(BATCH, 1)).astype(np.int32))
  student = dict(
      mlm_logits=(3 * rng.normal(size=(BATCH, PREDICTIONS, VOCAB))).astype(
          np.float32),
      next_sentence=rng.normal(size=(BATCH, 2)).astype(np.float32))
  teacher_logits = (3 * rng.normal(size=(BATCH, PREDICTIONS, VOCAB))).astype(
      np.float32)
  return features, student, teacher_logits


def _close(actual, expected):
  np.testing.assert_allclose(float(actual), float(expected), rtol=RTOL)


# === The per-term formulas ===


def test_feature_map_transfer_loss_is_the_originals():
  teacher, student = _pair()
  t, s = teacher["encoder_outputs"][1], student["encoder_outputs"][0]
  loss = dl.feature_map_transfer_loss(t, s)
  assert loss.dtype == tf.float32 and loss.shape == ()
  _close(loss, _twin_feature_map(t, s))
  # Scale and shift of either side do not matter: the layer norm has none.
  _close(dl.feature_map_transfer_loss(7 * t - 2, s), _twin_feature_map(t, s))
  # A global batch of 16: this batch's share of the global mean.
  _close(dl.feature_map_transfer_loss(t, s, 16),
         _twin_feature_map(t, s) * BATCH / 16)


@pytest.mark.parametrize("rule", ["additive", "quantization_friendly",
                                  "exclude"])
def test_attention_transfer_loss_is_the_originals(rule):
  teacher, student = _pair(rule=rule)
  t, s = teacher["attention_logits"][3], student["attention_logits"][1]
  loss = dl.attention_transfer_loss(t, s)
  assert loss.dtype == tf.float32 and loss.shape == ()
  _close(loss, _twin_attention(t, s))
  _close(dl.attention_transfer_loss(t, s, tf.constant(10.0)),
         _twin_attention(t, s) * BATCH / 10)


def test_attention_transfer_loss_needs_logits_not_probabilities():
  # What tf-models-official's port computes (softmax of probabilities) is
  # another number: the target is nearly uniform.
  teacher, student = _pair()
  t, s = teacher["attention_logits"][0], student["attention_logits"][0]
  loss = float(dl.attention_transfer_loss(t, s))
  double_softmax = _twin_attention(_softmax(t), s)
  assert abs(loss - double_softmax) > 0.1 * loss


def test_mean_variance_transfer_losses_are_the_originals():
  teacher, student = _pair()
  t, s = teacher["encoder_outputs"][3], student["encoder_outputs"][1]
  mean_loss, variance_loss = dl.mean_variance_transfer_losses(t, s)
  expected_mean, expected_variance = _twin_mean_variance(t, s)
  for value in (mean_loss, variance_loss):
    assert value.dtype == tf.float32 and value.shape == ()
  _close(mean_loss, expected_mean)
  _close(variance_loss, expected_variance)
  halved = dl.mean_variance_transfer_losses(t, s, 2 * BATCH)
  _close(halved[0], expected_mean / 2)
  _close(halved[1], expected_variance / 2)
  # The statistics are per position: a student of another width works.
  narrow = s[..., :HIDDEN // 2]
  expected = _twin_mean_variance(t, narrow)
  for value, twin in zip(dl.mean_variance_transfer_losses(t, narrow),
                         expected):
    _close(value, twin)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_soft_masked_lm_loss_is_the_originals(ratio):
  features, student, teacher_logits = _mlm_batch()
  ids, weights = features["masked_lm_ids"], features["masked_lm_weights"]
  loss = dl.soft_masked_lm_loss(ids, weights, student["mlm_logits"],
                                teacher_logits, ratio)
  assert loss.dtype == tf.float32 and loss.shape == ()
  _close(loss, _twin_soft_mlm(ids, weights, student["mlm_logits"],
                              teacher_logits, ratio))
  # The ratio may be a tensor (not known while tracing in a tf.function).
  _close(tf.function(dl.soft_masked_lm_loss)(
      ids, weights, student["mlm_logits"], teacher_logits,
      tf.constant(ratio)),
         _twin_soft_mlm(ids, weights, student["mlm_logits"], teacher_logits,
                        ratio))


def test_soft_masked_lm_loss_with_ratio_one_is_the_masked_lm_loss():
  features, student, teacher_logits = _mlm_batch()
  ids, weights = features["masked_lm_ids"], features["masked_lm_weights"]
  expected = pretraining_losses.masked_lm_loss(ids, weights,
                                               student["mlm_logits"])
  for teacher in (teacher_logits, None):
    assert float(dl.soft_masked_lm_loss(
        ids, weights, student["mlm_logits"], teacher, 1.0)) == float(expected)
  assert float(dl.soft_masked_lm_loss(
      ids, weights, student["mlm_logits"], teacher_logits, 1.0, 40.0)) == (
          float(pretraining_losses.masked_lm_loss(
              ids, weights, student["mlm_logits"], 40.0)))


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_inputs_give_float32_losses(dtype):
  teacher, student = _pair()
  low = [tf.cast(x, dtype) for x in (
      teacher["encoder_outputs"][1], student["encoder_outputs"][0],
      teacher["attention_logits"][1], student["attention_logits"][0])]
  rounded = [tf.cast(x, tf.float32).numpy() for x in low]
  hidden = dl.feature_map_transfer_loss(low[0], low[1])
  attention = dl.attention_transfer_loss(low[2], low[3])
  moments = dl.mean_variance_transfer_losses(low[0], low[1])
  for value in (hidden, attention) + moments:
    assert value.dtype == tf.float32
  _close(hidden, _twin_feature_map(rounded[0], rounded[1]))
  _close(attention, _twin_attention(rounded[2], rounded[3]))
  for value, twin in zip(moments, _twin_mean_variance(rounded[0],
                                                      rounded[1])):
    _close(value, twin)


# === The composites ===

FACTOR_CASES = {
    "defaults": dl.TransferFactors(),
    "no_attention": dl.TransferFactors(attention=0.0),
    "beta_zero": dl.TransferFactors(hidden=0.0, beta=0.0),  # no mean/var
    "attention_only": dl.TransferFactors(hidden=0.0, beta=0.0, gamma=0.0),
}
GATE_CASES = {"stage0": [1.0, 0.0], "stage1": [0.0, 1.0], "joint": [1.0, 1.0]}


@pytest.mark.parametrize("gates", list(GATE_CASES.values()),
                         ids=list(GATE_CASES))
@pytest.mark.parametrize("factors", list(FACTOR_CASES.values()),
                         ids=list(FACTOR_CASES))
def test_layer_transfer_losses_are_the_originals(factors, gates):
  teacher, student = _pair()
  result = dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                    tf.constant(gates), factors)
  expected = _twin_layer_transfer(teacher, student, TEACHER_LAYERS, gates,
                                  factors)
  assert sorted(result) == sorted(expected)
  for key, value in expected.items():
    assert result[key].dtype == tf.float32 and result[key].shape == ()
    if value == 0.0:
      assert float(result[key]) == 0.0, key
    else:
      _close(result[key], value)


def test_layer_transfer_losses_with_gates_computed_in_the_graph():
  # Gates from a stage variable are unknown while tracing: every block is
  # computed and weighted by its gate.
  teacher, student = _pair()
  stage = tf.Variable(1)
  @tf.function
  def losses():
    return dl.layer_transfer_losses(
        teacher, student, TEACHER_LAYERS,
        tf.one_hot(stage, STUDENT_BLOCKS), dl.TransferFactors())
  expected = _twin_layer_transfer(teacher, student, TEACHER_LAYERS,
                                  [0.0, 1.0], dl.TransferFactors())
  for key, value in expected.items():
    _close(losses()[key], value)


def test_layer_transfer_losses_skip_blocks_whose_gate_is_a_known_zero():
  # Not computed, so not even a NaN there reaches the loss (0 * NaN would).
  teacher, student = _pair()
  student["encoder_outputs"][1][:] = np.nan
  student["attention_logits"][1][:] = np.nan
  result = dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                    np.array([1.0, 0.0]), dl.TransferFactors())
  expected = _twin_layer_transfer(teacher, student, TEACHER_LAYERS,
                                  [1.0, 0.0], dl.TransferFactors())
  assert np.isnan(expected["loss"])  # the original's loop: 0 * NaN
  _close(result["loss"], _twin_layer_transfer(
      *_pair(), TEACHER_LAYERS, [1.0, 0.0], dl.TransferFactors())["loss"])


def test_layer_transfer_losses_skip_attention_when_its_factor_is_zero():
  teacher, student = _pair()
  for outputs in (teacher, student):
    del outputs["attention_logits"]
  factors = dl.TransferFactors(attention=0.0)
  result = dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                    [1.0, 1.0], factors)
  _close(result["loss"], _twin_layer_transfer(
      teacher, student, TEACHER_LAYERS, [1.0, 1.0], factors)["loss"])


def test_pretraining_distillation_loss_is_the_originals():
  features, student, teacher_logits = _mlm_batch()
  result = dl.pretraining_distillation_loss(features, student,
                                            teacher_logits, 0.5)
  assert sorted(result) == ["loss", "masked_lm_loss", "next_sentence_loss"]
  mlm = _twin_soft_mlm(features["masked_lm_ids"],
                       features["masked_lm_weights"], student["mlm_logits"],
                       teacher_logits, 0.5)
  nsp = _twin_next_sentence(features["next_sentence_labels"],
                            student["next_sentence"])
  _close(result["masked_lm_loss"], mlm)
  _close(result["next_sentence_loss"], nsp)
  _close(result["loss"], mlm + nsp)
  # Without the NSP head: the masked LM alone.
  result = dl.pretraining_distillation_loss(
      features, dict(mlm_logits=student["mlm_logits"]), teacher_logits, 0.5)
  assert sorted(result) == ["loss", "masked_lm_loss"]
  _close(result["loss"], mlm)


def test_pretraining_distillation_loss_with_ratio_one_is_pretraining_loss():
  features, student, teacher_logits = _mlm_batch()
  expected = pretraining_losses.pretraining_loss(features, student)
  for teacher in (teacher_logits, None):
    result = dl.pretraining_distillation_loss(features, student, teacher,
                                              1.0)
    assert {k: float(v) for k, v in result.items()} == {
        k: float(v) for k, v in expected.items()}


# === No gradient into the teacher ===


def test_no_gradient_flows_into_the_teacher():
  teacher, student = _pair()
  features, student_mlm, teacher_logits = _mlm_batch()
  teacher = {k: [tf.constant(x) for x in v] for k, v in teacher.items()}
  student = {k: [tf.constant(x) for x in v] for k, v in student.items()}
  teacher_logits = tf.constant(teacher_logits)
  student_logits = tf.constant(student_mlm["mlm_logits"])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([teacher, student, teacher_logits, student_logits])
    losses = dict(
        layers=dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                        [1.0, 1.0], dl.TransferFactors())[
                                            "loss"],
        mlm=dl.soft_masked_lm_loss(
            features["masked_lm_ids"], features["masked_lm_weights"],
            student_logits, teacher_logits, 0.5))
  for name, loss in losses.items():
    teacher_side = [teacher_logits] if name == "mlm" else tf.nest.flatten(
        teacher)
    student_side = [student_logits] if name == "mlm" else tf.nest.flatten(
        student)
    for gradient in tape.gradient(loss, teacher_side):
      assert gradient is None or not np.any(gradient.numpy()), name
    for gradient in tape.gradient(loss, student_side):
      assert gradient is not None and np.any(gradient.numpy()), name


# === Replicas ===


def _halve(value):
  if isinstance(value, (list, tuple)):
    return [_halve(v) for v in value]
  if isinstance(value, dict):
    return {k: _halve(v) for k, v in value.items()}
  half = BATCH // 2
  return value[:half], value[half:]


def _split(structure):
  """(first half, second half) of every array in a nested structure."""
  halves = _halve(structure)
  pick = lambda s, i: (s[i] if isinstance(s, tuple) else
                       [pick(v, i) for v in s] if isinstance(s, list) else
                       {k: pick(v, i) for k, v in s.items()})
  return pick(halves, 0), pick(halves, 1)


def test_per_term_halves_with_the_global_batch_sum_to_the_whole():
  teacher, student = _pair()
  features, student_mlm, teacher_logits = _mlm_batch()
  t_hidden, s_hidden = teacher["encoder_outputs"][1], student[
      "encoder_outputs"][0]
  t_att, s_att = teacher["attention_logits"][1], student[
      "attention_logits"][0]
  terms = {
      "feature_map": (dl.feature_map_transfer_loss, (t_hidden, s_hidden)),
      "attention": (dl.attention_transfer_loss, (t_att, s_att)),
      "mean": (lambda t, s, g=None: dl.mean_variance_transfer_losses(
          t, s, g)[0], (t_hidden, s_hidden)),
      "variance": (lambda t, s, g=None: dl.mean_variance_transfer_losses(
          t, s, g)[1], (t_hidden, s_hidden)),
  }
  for name, (function, args) in terms.items():
    whole = function(*args)
    first, second = zip(*[_halve(a) for a in args])
    np.testing.assert_allclose(
        float(function(*first, BATCH) + function(*second, BATCH)),
        float(whole), rtol=RTOL, err_msg=name)
  # The masked LM divides by the global weight sum, not the batch size.
  mlm_args = (features["masked_lm_ids"], features["masked_lm_weights"],
              student_mlm["mlm_logits"], teacher_logits)
  first, second = zip(*[_halve(a) for a in mlm_args])
  weight_sum = float(features["masked_lm_weights"].sum())
  assert first[1].sum() != second[1].sum()
  np.testing.assert_allclose(
      float(dl.soft_masked_lm_loss(*first, 0.3, weight_sum)
            + dl.soft_masked_lm_loss(*second, 0.3, weight_sum)),
      float(dl.soft_masked_lm_loss(*mlm_args, 0.3)), rtol=RTOL)


class _TwoReplicas:
  """Two replicas run in two threads, whose `all_reduce` really sums.

  Each thread gets a context; its `all_reduce(SUM, values)` waits for the
  other thread's values and returns the totals, as a replica context of a
  two-replica strategy would: no assumption about what is reduced.
  """

  def __init__(self):
    self._barrier = threading.Barrier(2, timeout=60)
    self._values = [None, None]
    self.calls = [0, 0]

  def _all_reduce(self, index, reduce_op, values):
    assert reduce_op == tf.distribute.ReduceOp.SUM
    self.calls[index] += 1
    self._values[index] = [v.numpy() for v in values]
    self._barrier.wait()
    totals = [tf.constant(a + b) for a, b in zip(*self._values)]
    self._barrier.wait()  # both have read before either writes again
    return totals

  def run(self, function, first_args, second_args):
    """`function(*args, replica_context)` on each half; both results."""
    results, errors = [None, None], []

    def replica(index, args):
      context = type("Context", (), dict(
          all_reduce=lambda _, op, v: self._all_reduce(index, op, v)))()
      try:
        results[index] = function(*args, context)
      except Exception as error:  # pylint: disable=broad-except
        errors.append(error)
        self._barrier.abort()

    threads = [threading.Thread(target=replica, args=(i, a))
               for i, a in enumerate((first_args, second_args))]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join(timeout=120)
    if errors:
      raise errors[0]
    return results


def _with_gradients(loss_function, watched):
  """`loss_function(watched)` and its gradients w.r.t. `watched`."""
  def run(watched_values, *rest):
    watched_values = tf.nest.map_structure(tf.constant, watched_values)
    with tf.GradientTape() as tape:
      tape.watch(watched_values)
      losses = loss_function(watched_values, *rest)
    return losses, tape.gradient(losses["loss"], watched_values)
  return run


def _assert_halves_sum_to_whole(whole, halves):
  (whole_losses, whole_grads), ((losses_1, grads_1), (losses_2, grads_2)) = (
      whole, halves)
  for key, value in whole_losses.items():
    np.testing.assert_allclose(float(losses_1[key] + losses_2[key]),
                               float(value), rtol=RTOL, err_msg=key)
  for g, g1, g2 in zip(tf.nest.flatten(whole_grads),
                       tf.nest.flatten(grads_1), tf.nest.flatten(grads_2)):
    np.testing.assert_allclose(np.concatenate([g1, g2]), g.numpy(),
                               rtol=RTOL, atol=1e-7)


def test_layer_transfer_losses_all_reduce_the_batch_over_replicas():
  teacher, student = _pair()
  run = _with_gradients(
      lambda s, t, context=None: dl.layer_transfer_losses(
          t, s, TEACHER_LAYERS, [1.0, 1.0], dl.TransferFactors(), context),
      student)
  whole = run(student, teacher)
  (student_1, student_2), (teacher_1, teacher_2) = _split(student), _split(
      teacher)
  replicas = _TwoReplicas()
  halves = replicas.run(run, (student_1, teacher_1), (student_2, teacher_2))
  assert replicas.calls == [1, 1]
  _assert_halves_sum_to_whole(whole, halves)


def test_pretraining_distillation_loss_all_reduces_over_replicas():
  features, student, teacher_logits = _mlm_batch()
  run = _with_gradients(
      lambda s, f, t, context=None: dl.pretraining_distillation_loss(
          f, s, t, 0.3, context), student)
  whole = run(student, features, teacher_logits)
  (student_1, student_2), (features_1, features_2) = _split(student), _split(
      features)
  teacher_1, teacher_2 = _halve(teacher_logits)
  assert (features_1["masked_lm_weights"].sum()
          != features_2["masked_lm_weights"].sum())
  replicas = _TwoReplicas()
  halves = replicas.run(run, (student_1, features_1, teacher_1),
                        (student_2, features_2, teacher_2))
  assert replicas.calls == [1, 1]
  _assert_halves_sum_to_whole(whole, halves)


def test_in_a_mirrored_strategy_one_replica_gets_the_whole_batch_loss():
  teacher, student = _pair()
  features, student_mlm, teacher_logits = _mlm_batch()
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])

  def losses():
    # Default replica_context: the strategy's, found inside `run`.
    result = dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                      [0.0, 1.0], dl.TransferFactors())
    result.update({"mlm_" + k: v for k, v in dl.pretraining_distillation_loss(
        features, student_mlm, teacher_logits, 0.3).items()})
    return result

  per_replica = tf.function(lambda: strategy.run(losses))()
  for key, value in losses().items():
    reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica[key],
                              None)
    np.testing.assert_allclose(float(reduced), float(value), rtol=RTOL,
                               err_msg=key)


# === Bad input ===


def _bad_calls():
  teacher, student = _pair()
  features, student_mlm, teacher_logits = _mlm_batch()
  hidden, narrow = student["encoder_outputs"][0], student[
      "encoder_outputs"][0][..., :4]
  factors = dl.TransferFactors()
  no_attention = {k: v for k, v in student.items() if k != "attention_logits"}
  return {
      "feature_map_shapes": (
          lambda: dl.feature_map_transfer_loss(hidden, narrow),
          "`student_hidden` must have the shape of `teacher_hidden`"),
      "feature_map_rank": (
          lambda: dl.feature_map_transfer_loss(hidden[0], hidden[0]),
          "`teacher_hidden` must have rank 3"),
      "attention_shapes": (
          lambda: dl.attention_transfer_loss(
              teacher["attention_logits"][0],
              student["attention_logits"][0][:, :1]),
          "`student_logits` must have the shape of `teacher_logits`"),
      "moments_sequence": (
          lambda: dl.mean_variance_transfer_losses(hidden, hidden[:, :2]),
          "leading dimensions"),
      "mlm_shapes": (
          lambda: dl.soft_masked_lm_loss(
              features["masked_lm_ids"], features["masked_lm_weights"],
              student_mlm["mlm_logits"], teacher_logits[..., :4], 0.5),
          "`student_logits` must have the shape of `teacher_logits`"),
      "ratio_range": (
          lambda: dl.soft_masked_lm_loss(
              features["masked_lm_ids"], features["masked_lm_weights"],
              student_mlm["mlm_logits"], teacher_logits, 1.5),
          r"`ground_truth_ratio` must be in \[0, 1\].*Received: 1.5"),
      "teacher_missing": (
          lambda: dl.pretraining_distillation_loss(features, student_mlm,
                                                   None, 0.5),
          "`teacher_mlm_logits` is None, so `ground_truth_ratio` must be "
          "1.0. Received: 0.5"),
      "teacher_layers_length": (
          lambda: dl.layer_transfer_losses(teacher, student, (1, 2, 3),
                                           [1.0, 1.0], factors),
          r"`teacher_layers` must have one teacher block index per student "
          r"block \(2\). Received 3"),
      "teacher_layer_out_of_range": (
          lambda: dl.layer_transfer_losses(teacher, student, (1, 4),
                                           [1.0, 1.0], factors),
          r"teacher block indices in \[0, 4\).*Received: \(1, 4\)"),
      "teacher_layer_negative": (
          lambda: dl.layer_transfer_losses(teacher, student, (-1, 3),
                                           [1.0, 1.0], factors),
          r"teacher block indices in \[0, 4\)"),
      "gates_length": (
          lambda: dl.layer_transfer_losses(teacher, student, TEACHER_LAYERS,
                                           [1.0, 1.0, 0.0], factors),
          r"`layer_gates` must have shape \[2\].*Received shape \(3,\)"),
      "attention_missing": (
          lambda: dl.layer_transfer_losses(teacher, no_attention,
                                           TEACHER_LAYERS, [1.0, 1.0],
                                           factors),
          "`student_outputs` has no 'attention_logits'.*"
          "return_attention_logits=True"),
      "block_width": (
          lambda: dl.layer_transfer_losses(
              teacher, dict(student, encoder_outputs=[narrow, narrow]),
              TEACHER_LAYERS, [1.0, 1.0], factors),
          r"`student_outputs\['encoder_outputs'\]\[0\]` must have the shape "
          r"of `teacher_outputs\['encoder_outputs'\]\[1\]`"),
      "negative_factor": (
          lambda: dl.TransferFactors(hidden=-1.0),
          "`hidden` must be a finite number >= 0.*Received: hidden=-1.0"),
  }


BAD_CALLS = _bad_calls()


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_input_raises_a_value_error_naming_the_argument(name):
  call, message = BAD_CALLS[name]
  with pytest.raises(ValueError, match=message):
    call()
