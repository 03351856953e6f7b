"""Each private TF / Keras / TF Text API the project uses still behaves.

`mobilebert_tf/_compat.py` is the only place that touches them; a TensorFlow,
tf_keras, tensorflow_text or LiteRT upgrade that changes one fails here, by
name, rather than deep inside an export.
"""

import os
import subprocess
import sys

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import tensorflow as tf
import tensorflow_text  # pylint: disable=unused-import
import tf_keras
from official.nlp.modeling import layers as nlp_layers
from official.nlp.tools import export_tfhub_lib

from mobilebert_tf import _compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _checkpoint_keys(obj, directory):
  path = tf.train.Checkpoint(root=obj).write(str(directory / "ckpt"))
  return [name for name, _ in tf.train.list_variables(path)]


class _Holder(tf_keras.layers.Layer):

  def __init__(self):
    super().__init__()
    self.tracked = tf_keras.layers.Dense(2)
    with _compat.untracked_attributes(self):
      self.untracked = tf_keras.layers.Dense(3)
    self.tracked_again = tf_keras.layers.Dense(4)

  def call(self, x):
    return self.tracked(x), self.untracked(x), self.tracked_again(x)


def test_untracked_attributes_stay_out_of_the_checkpoint(tmp_path):
  holder = _Holder()
  holder(tf.zeros([1, 5]))
  keys = _checkpoint_keys(holder, tmp_path)
  assert any(k.startswith("tracked/") for k in keys)
  assert any(k.startswith("tracked_again/") for k in keys)
  assert not any("untracked" in k for k in keys)
  assert holder._self_setattr_tracking  # pylint: disable=protected-access


def test_stop_attribute_tracking(tmp_path):
  layer = tf_keras.layers.Layer()
  layer.kept = tf_keras.layers.Dense(2)
  layer.kept.build([None, 3])
  _compat.stop_attribute_tracking(layer)
  layer.hidden = tf_keras.layers.Dense(2)
  layer.hidden.build([None, 3])
  keys = _checkpoint_keys(layer, tmp_path)
  assert any("kept" in k for k in keys)
  assert not any("hidden" in k for k in keys)


def test_attach_without_weights():
  inputs = tf_keras.Input([3])
  model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs))
  other_inputs = tf_keras.Input([3])
  other = tf_keras.Model(other_inputs,
                         tf_keras.layers.Dense(5)(other_inputs))
  _compat.attach_without_weights(model, "extra", other)
  assert model.extra is other
  assert len(model.weights) == 2  # kernel and bias of its own Dense only


def test_create_optimizer_slots_before_the_first_step():
  variable = tf.Variable([1.0, 2.0])
  legacy = tf_keras.optimizers.legacy.Adam
  for optimizer in (legacy(), tf_keras.optimizers.Adam(),
                    tf_keras.mixed_precision.LossScaleOptimizer(legacy())):
    _compat.create_optimizer_slots(optimizer, [variable])
    variables = optimizer.variables
    names = [v.name for v in (variables() if callable(variables)
                              else variables)]
    assert len(names) == 3, names  # iterations, m and v
    assert int(optimizer.iterations) == 0


def test_op_determinism_holds_inside_the_block_only():
  from tensorflow.python.framework import config  # pylint: disable=g-direct-tensorflow-import,g-import-not-at-top
  assert not config.is_op_determinism_enabled()
  with _compat.op_determinism(True):
    assert config.is_op_determinism_enabled()
  assert not config.is_op_determinism_enabled()
  with _compat.op_determinism(False):
    assert not config.is_op_determinism_enabled()


def test_convert_variables_to_constants():
  variable = tf.Variable([[2.0]])
  function = tf.function(lambda x: tf.matmul(x, variable)).get_concrete_function(
      tf.TensorSpec([1, 1]))
  frozen = _compat.convert_variables_to_constants(function)
  assert not frozen.captured_inputs
  variable.assign([[5.0]])  # a snapshot: later changes do not reach it
  np.testing.assert_allclose(frozen(tf.constant([[3.0]]))[0], [[6.0]])


def test_bert_basic_tokenizer_splits_words_and_punctuation():
  tokenizer = _compat.bert_basic_tokenizer(lower_case=False)
  words, starts, ends = tokenizer.tokenize_with_offsets(
      tf.constant(["Hello, World!"]))
  assert words.to_list() == [[b"Hello", b",", b"World", b"!"]]
  assert starts.to_list() == [[0, 5, 7, 12]]
  assert ends.to_list() == [[5, 6, 12, 13]]


def test_saved_call_of_model_garden_pack_wrapper():
  pack = nlp_layers.BertPackInputs(
      seq_length=6, special_tokens_dict=dict(
          start_of_sequence_id=2, end_of_segment_id=3, padding_id=0))
  wrapper = export_tfhub_lib.BertPackInputsSavedModelWrapper(pack)
  call = _compat.saved_call(wrapper)
  segment = tf.ragged.constant([[[7, 8]]], dtype=tf.int32)
  packed = call([segment], seq_length=5)
  assert packed["input_word_ids"].numpy().tolist() == [[2, 7, 8, 3, 0]]


def test_tflite_op_count():
  module = tf.Module()
  module.f = tf.function(lambda x: tf.reduce_sum(x + 1.0),
                         input_signature=[tf.TensorSpec([2], tf.float32)])
  model = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.f.get_concrete_function()], module).convert()
  assert _compat.tflite_op_count(model) == 2  # ADD, SUM


def test_tflite_op_details_show_xnnpack_partitions():
  module = tf.Module()
  module.f = tf.function(lambda x: tf.nn.relu(x + 1.0) * 2.0,
                         input_signature=[tf.TensorSpec([2], tf.float32)])
  model = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.f.get_concrete_function()], module).convert()
  interpreter = Interpreter(model_content=model)
  interpreter.allocate_tensors()
  names = [op["op_name"] for op in _compat.tflite_op_details(interpreter)]
  assert sorted(names) == ["ADD", "DELEGATE", "MUL"]  # relu fused into ADD


def test_saved_model_cli_main_runs_tensorflows_tool(tmp_path):
  """Through the shim that registers TF Text ops first (a fresh process)."""
  module = tf.Module()
  module.f = tf.function(lambda x: {"y": x * 2.0},
                         input_signature=[tf.TensorSpec([None], tf.float32,
                                                        name="x")])
  tf.saved_model.save(module, str(tmp_path / "model"),
                      signatures=module.f.get_concrete_function())
  result = subprocess.run(
      [sys.executable, "-m", "export.saved_model_cli", "run", "--dir",
       str(tmp_path / "model"), "--tag_set", "serve", "--signature_def",
       "serving_default", "--input_exprs", "x=[1.5, 2.0]"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "[3. 4.]" in result.stdout
