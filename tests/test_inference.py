"""freeze_for_inference: same outputs as the model, a snapshot of its weights,
clear errors."""

import numpy as np
import pytest
import tensorflow as tf

from mobilebert_tf import build_encoder
from mobilebert_tf import freeze_for_inference
from mobilebert_tf.heads import build_for_sequence_classification
from tests.helpers import make_encoder_inputs

ENCODER_KEYS = ("input_word_ids", "input_mask", "input_type_ids")


def _encoder_inputs(inputs):
  return {k: inputs[k] for k in ENCODER_KEYS}


def test_frozen_encoder_equals_the_model_at_any_shape(tiny_config):
  encoder = build_encoder(tiny_config)
  frozen = freeze_for_inference(encoder)
  assert sorted(frozen.input_specs) == sorted(ENCODER_KEYS)
  for batch, seq in ((3, 8), (1, 5), (2, 1)):
    inputs = _encoder_inputs(
        make_encoder_inputs(tiny_config, batch, seq, num_predictions=1))
    got, want = frozen(inputs), encoder(inputs)
    assert sorted(got) == ["pooled_output", "sequence_output"]
    for key in got:
      np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7)


def test_all_outputs_and_other_integer_dtypes(tiny_config, tiny_inputs):
  encoder = build_encoder(tiny_config)
  frozen = freeze_for_inference(encoder, output_keys=None)
  inputs = {k: v.astype(np.int64) for k, v in
            _encoder_inputs(tiny_inputs).items()}
  got, want = frozen(inputs), encoder(_encoder_inputs(tiny_inputs))
  assert sorted(got) == sorted(want)
  assert len(got["encoder_outputs"]) == tiny_config.num_hidden_layers
  np.testing.assert_allclose(got["encoder_outputs"][-1],
                             want["encoder_outputs"][-1], rtol=1e-6, atol=1e-7)


def test_frozen_weights_are_a_snapshot(tiny_config, tiny_inputs):
  encoder = build_encoder(tiny_config)
  inputs = _encoder_inputs(tiny_inputs)
  frozen = freeze_for_inference(encoder)
  before = frozen(inputs)["sequence_output"].numpy()
  for variable in encoder.trainable_variables:
    variable.assign(variable * 1.5)
  changed = encoder(inputs)["sequence_output"].numpy()
  assert not np.allclose(changed, before)
  np.testing.assert_array_equal(frozen(inputs)["sequence_output"], before)
  np.testing.assert_allclose(
      freeze_for_inference(encoder)(inputs)["sequence_output"], changed,
      rtol=1e-6, atol=1e-7)


def test_task_head(tiny_config, tiny_inputs):
  model = build_for_sequence_classification(tiny_config, num_classes=3)
  inputs = _encoder_inputs(tiny_inputs)
  frozen = freeze_for_inference(model, output_keys=None)
  np.testing.assert_allclose(frozen(inputs), model(inputs), rtol=1e-6,
                             atol=1e-7)


def test_bad_input_is_named(tiny_config, tiny_inputs):
  encoder = build_encoder(tiny_config)
  with pytest.raises(ValueError, match=r"\['bogus'\] are not outputs"):
    freeze_for_inference(encoder, output_keys=["bogus"])
  frozen = freeze_for_inference(encoder)
  inputs = _encoder_inputs(tiny_inputs)
  with pytest.raises(ValueError, match=r"Missing: \['input_type_ids'\]"):
    frozen({k: inputs[k] for k in ENCODER_KEYS[:2]})
  with pytest.raises(ValueError, match=r"unknown: \['extra'\]"):
    frozen(dict(inputs, extra=inputs["input_mask"]))
  with pytest.raises(TypeError, match="`input_mask` must hold integers"):
    frozen(dict(inputs, input_mask=inputs["input_mask"].astype(np.float32)))
  with pytest.raises(TypeError, match="takes a dict"):
    frozen(tf.constant(inputs["input_word_ids"]))
