"""Tests for `mobilebert_tf.optimization`: the one optimizer path."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import mobilebert_tf
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import optimization
from mobilebert_tf.layers import MobileBertMaskedLM
from mobilebert_tf.layers import NoNorm
from tests.helpers import TINY_CONFIG

# Which weights of each layer type are decayed (the original's rule: not
# biases, LayerNorm or FakeLayerNorm parameters). The MLM head's
# `embedding_table` is the word embedding, classified with the Embedding.
EXPECTED_DECAY = (
    (tf_keras.layers.Dense, {"kernel": True, "bias": False}),
    (tf_keras.layers.EinsumDense, {"kernel": True, "bias": False}),
    (tf_keras.layers.Embedding, {"embeddings": True}),
    (NoNorm, {"gamma": False, "beta": False}),
    (tf_keras.layers.LayerNormalization, {"gamma": False, "beta": False}),
    (MobileBertMaskedLM, {"extra_output_weights": True, "bias": False}),
)


@pytest.fixture(scope="module")
def pretrainer():
  tf_keras.utils.set_random_seed(0)
  return mobilebert_tf.build_pretrainer(
      MobileBertConfig.from_dict(TINY_CONFIG), with_nsp=True)


def _expected_decay(model):
  """{variable ref: decayed?} by layer type, for every trainable variable."""
  expected, layer_types = {}, {}
  for layer in model.submodules:
    for layer_type, weights in EXPECTED_DECAY:
      if isinstance(layer, layer_type):
        for attribute, decayed in weights.items():
          variable = getattr(layer, attribute)
          expected[variable.ref()] = decayed
          layer_types[variable.ref()] = layer_type.__name__
  return expected, layer_types


def test_uses_weight_decay_by_layer_type(pretrainer):
  expected, layer_types = _expected_decay(pretrainer)
  trainable = {v.ref() for v in pretrainer.trainable_variables}
  # Every trainable variable belongs to one of the listed layer types.
  unclassified = [r.deref().name for r in trainable - set(expected)]
  assert not unclassified, unclassified
  wrong = [(layer_types[r], r.deref().name) for r in trainable
           if optimization.uses_weight_decay(r.deref()) != expected[r]]
  assert not wrong, wrong
  # Both kinds exist, in all the layer types.
  assert {layer_types[r] for r in trainable} == {
      t.__name__ for t, _ in EXPECTED_DECAY}
  assert sum(expected[r] for r in trainable) >= 1
  assert sum(not expected[r] for r in trainable) >= 1


@pytest.mark.parametrize("name, decayed", [
    ("kernel:0", True), ("encoder/layer_0/attention/query/kernel:0", True),
    ("embeddings:0", True), ("word_embeddings/embeddings", True),
    ("cls/predictions/extra_output_weights:0", True),
    ("bias:0", False), ("cls/predictions/output_bias/bias:0", False),
    ("layer_0/attention/norm/gamma:0", False), ("norm/beta", False),
    ("beta", False), ("alphabet:0", True), ("gamma_kernel:0", True),
    ("unbiased/kernel:0", True),
    # MirroredStrategy's replica copies follow their variable.
    ("layer_0/attention/query/bias/replica_1:0", False),
    ("norm/gamma/replica_3:0", False), ("query/kernel/replica_1:0", True),
], ids=str)
def test_uses_weight_decay_by_name(name, decayed):
  assert optimization.uses_weight_decay(name) is decayed


def _set_random_values(variables, seed=0):
  """Nonzero values everywhere: a zero bias would not show a decay."""
  rng = np.random.default_rng(seed)
  for v in variables:
    v.assign(rng.uniform(0.5, 1.5, v.shape) * rng.choice([-1, 1], v.shape))


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_zero_gradient_step_decays_exactly_the_selected_variables(
    pretrainer, optimizer_type):
  variables = pretrainer.trainable_variables
  _set_random_values(variables)
  before = [v.numpy() for v in variables]
  learning_rate, rate = 0.1, 0.2
  optimizer = optimization.create_optimizer(
      optimizer_type, learning_rate=learning_rate, num_train_steps=10,
      weight_decay_rate=rate)
  optimizer.apply_gradients(
      [(tf.zeros_like(v), v) for v in variables])
  decayed = [optimization.uses_weight_decay(v) for v in variables]
  assert any(decayed) and not all(decayed)
  for v, old, decay in zip(variables, before, decayed):
    new = v.numpy()
    if not decay:
      np.testing.assert_array_equal(new, old, err_msg=v.name)
      continue
    # Decoupled decay only (the Adam update of a zero gradient is 0):
    # AdamW: w - lr * rate * w. LAMB: its trust ratio |w| / |rate * w|
    # scales the update rate * w to |w|: w - lr * w.
    factor = {"adamw": 1 - learning_rate * rate,
              "lamb": 1 - learning_rate}[optimizer_type]
    np.testing.assert_allclose(new, old * factor, rtol=1e-5,
                               err_msg=v.name)


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
def test_zero_weight_decay_rate_changes_nothing(pretrainer, optimizer_type):
  variables = pretrainer.trainable_variables[:6]
  _set_random_values(variables, seed=1)
  before = [v.numpy() for v in variables]
  optimizer = optimization.create_optimizer(
      optimizer_type, learning_rate=0.1, num_train_steps=10,
      weight_decay_rate=0.0)
  optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
  for v, old in zip(variables, before):
    np.testing.assert_array_equal(v.numpy(), old, err_msg=v.name)


def _reference_learning_rate(step, peak, total, warmup, end=0.0, power=1.0):
  """NumPy twin of the schedule.

  A straight line from 0 at step 0 to `peak` at `warmup`, then polynomial
  decay from `peak` to `end` at `total`.
  """
  if step < warmup:
    return step / warmup * peak
  progress = min(step - warmup, total - warmup) / max(total - warmup, 1)
  return (peak - end) * (1 - progress) ** power + end


@pytest.mark.parametrize("optimizer_type", ["adamw", "lamb"])
@pytest.mark.parametrize("total, warmup, end, power", [
    (100, 10, 0.0, 1.0), (100, 0, 0.0, 1.0), (50, 5, 1e-4, 1.0),
    (40, 4, 0.0, 2.0),
], ids=["warmup", "no_warmup", "end_lr", "quadratic"])
def test_schedule_equals_the_numpy_formula(optimizer_type, total, warmup,
                                           end, power):
  peak = 3e-3
  optimizer = optimization.create_optimizer(
      optimizer_type, learning_rate=peak, num_train_steps=total,
      num_warmup_steps=warmup, end_learning_rate=end, power=power)
  steps = sorted({0, 1, warmup // 2, max(warmup - 1, 0), warmup,
                  warmup + 1, total // 2, total - 1, total, total + 7})
  got = [optimization.learning_rate_at(optimizer, s) for s in steps]
  expected = [_reference_learning_rate(s, peak, total, warmup, end, power)
              for s in steps]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-10)
  assert got[0] == pytest.approx(0.0 if warmup else peak)
  assert got[-1] == pytest.approx(end)


def test_learning_rate_at_a_constant():
  optimizer = tf_keras.optimizers.legacy.SGD(learning_rate=0.25)
  assert optimization.learning_rate_at(optimizer, 123) == 0.25


def _clipped_step(optimizer_type, global_clipnorm):
  """The change of a bias (no decay, no LAMB adaptation) by gradient 100."""
  variable = tf.Variable([1.0], name="bias")
  optimizer = optimization.create_optimizer(
      optimizer_type, learning_rate=1.0, num_train_steps=10,
      global_clipnorm=global_clipnorm, epsilon=1.0, weight_decay_rate=0.0)
  optimizer.apply_gradients([(tf.constant([100.0]), variable)])
  return 1.0 - float(variable.numpy()[0])


def _first_step(optimizer_type, gradient, epsilon=1.0, beta_2=0.999):
  """The first update at learning rate 1 (epsilon large, so clipping shows).

  LAMB: m_hat / (sqrt(v_hat) + epsilon) = g / (|g| + epsilon). AdamW (Keras'
  legacy Adam): epsilon is added before the bias correction of v, so
  sqrt(1 - beta_2) g / (sqrt(1 - beta_2) |g| + epsilon).
  """
  scale = np.sqrt(1 - beta_2) if optimizer_type == "adamw" else 1.0
  return scale * gradient / (scale * abs(gradient) + epsilon)


@pytest.mark.parametrize("optimizer_type, clipnorm", [
    # (tf-models-official's AdamWeightDecay would also clip at its own
    # default 1.0; create_optimizer turns that off.)
    ("adamw", 1.0), ("adamw", 4.0), ("adamw", None),
    ("lamb", 1.0), ("lamb", 4.0), ("lamb", None),
], ids=str)
def test_gradients_are_clipped_to_global_clipnorm(optimizer_type, clipnorm):
  # One gradient of norm 100: clipped to `clipnorm`, or not at all for None.
  expected = _first_step(optimizer_type, clipnorm or 100.0)
  assert _clipped_step(optimizer_type, clipnorm) == pytest.approx(
      expected, rel=1e-4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer_type="sgd"), r"`optimizer_type` must be one of "
     r"\('lamb', 'adamw'\)\. Received: 'sgd'"),
    (dict(num_train_steps=0), r"`num_train_steps` must be a positive"),
    (dict(num_train_steps=-3), r"Received: -3"),
    (dict(num_warmup_steps=-1), r"`num_warmup_steps` must be in \[0, "),
    (dict(num_warmup_steps=11), r"Received: 11"),
], ids=["unknown_type", "zero_steps", "negative_steps", "negative_warmup",
        "warmup_too_long"])
def test_bad_arguments_raise_value_error(kwargs, message):
  args = dict(optimizer_type="adamw", learning_rate=1e-3, num_train_steps=10)
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    optimization.create_optimizer(**args)
