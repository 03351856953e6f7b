"""Tests of `checkpoints.restore`: finding, classifying, restoring checkpoints.

The checkpoints are written here: an original-format TF1 checkpoint of a
tiny MobileBERT (random values under the TF1 names, Adam slots,
`global_step`), our TF2 checkpoints, the converter's and
tf-models-official's. Restored weights are compared with an independent
restore (TF1 values placed by `checkpoints.tf1_io`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from official.projects.mobilebert import model_utils as tfm_model_utils

from checkpoints import convert
from checkpoints import restore
from checkpoints import tf1_io
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import numerics
from tests import tf1_reference

# tf-models-official 2.20.0's model_utils uses tf_keras without importing it.
tfm_model_utils.tf_keras = tf_keras

CONFIG = dict(tf1_reference.TEST_CONFIGS["opt_pooler"])  # vocab 72, 2 blocks


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  """A TF1 checkpoint and the pretrainer its values make (by `tf1_io`)."""
  root = tmp_path_factory.mktemp("restore")
  variables = tf1_reference.random_tf1_variables(
      CONFIG, seed=0, with_optimizer_slots=True)
  prefix = tf1_io.write_tf1_checkpoint(variables, str(root / "model.ckpt"))
  config = MobileBertConfig.from_dict(CONFIG)
  reference = build_pretrainer(config)
  tf1_io.assign_tf1_variables(reference, config, variables)
  return types.SimpleNamespace(root=root, prefix=prefix, config=config,
                               variables=variables, reference=reference)


def _assert_weights_equal(pretrainer, reference):
  assert len(pretrainer.weights) == len(reference.weights)
  for a, b in zip(pretrainer.weights, reference.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# === resolve_prefix ===


def _write_tf2(directory, name="ckpt"):
  os.makedirs(directory, exist_ok=True)
  checkpoint = tf.train.Checkpoint(v=tf.Variable([1.0, 2.0]))
  return checkpoint.write(os.path.join(directory, name))


@pytest.mark.parametrize("form", ["prefix", "index_file", "data_file",
                                  "meta_file", "directory_single_index",
                                  "directory_with_state_file"])
def test_resolve_prefix_accepts(tmp_path, form):
  lines = []
  if form == "directory_with_state_file":
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(v=tf.Variable(1.0)), str(tmp_path), 3)
    manager.save()
    prefix = manager.save()  # The state file names the latest.
    path = str(tmp_path)
  else:
    prefix = _write_tf2(str(tmp_path))
    path = {"prefix": prefix, "index_file": prefix + ".index",
            "data_file": prefix + ".data-00000-of-00001",
            "meta_file": prefix + ".meta",
            "directory_single_index": str(tmp_path)}[form]
  assert restore.resolve_prefix(path, flag="--ckpt", log=lines.append) == (
      prefix)
  if form == "prefix":
    assert not lines
  elif form.startswith("directory"):
    assert lines == [f"--ckpt is a directory; using the checkpoint {prefix}"]
  else:
    assert lines == [f"--ckpt names the file {os.path.basename(path)}, not "
                     f"the checkpoint prefix; using the prefix {prefix}"]


def test_resolve_prefix_errors_name_the_flag_and_candidates(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    restore.resolve_prefix(str(tmp_path / "nowhere" / "model.ckpt"),
                           flag="--tf1_checkpoint_path")
  assert str(info.value) == (
      f"Checkpoint not found: {tmp_path}/nowhere/model.ckpt.index does not "
      "exist. Pass the checkpoint prefix to --tf1_checkpoint_path, e.g. "
      "DIR/model.ckpt.")

  first = _write_tf2(str(tmp_path / "two"), "a.ckpt")
  second = _write_tf2(str(tmp_path / "two"), "b.ckpt")
  with pytest.raises(FileNotFoundError, match="Checkpoints in that "
                     f"directory: {first}, {second}"):
    restore.resolve_prefix(str(tmp_path / "two" / "c.ckpt"))
  with pytest.raises(FileNotFoundError, match=f"It holds several: {first}, "
                     f"{second}; pass one prefix"):
    restore.resolve_prefix(str(tmp_path / "two"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError,
                     match="No checkpoint in directory .*empty. --x takes a "
                     "checkpoint prefix"):
    restore.resolve_prefix(str(tmp_path / "empty"), flag="--x")


# === checkpoint_format ===


def test_checkpoint_format(model, tmp_path):
  assert restore.checkpoint_format(model.prefix) == (model.prefix, "tf1")
  tf2 = tf.train.Checkpoint(**model.reference.checkpoint_items).write(
      str(tmp_path / "tf2" / "ckpt"))
  assert restore.checkpoint_format(tf2 + ".index") == (tf2, "tf2")
  other = tf1_io.write_tf1_checkpoint(
      {"dense/kernel": np.ones((2, 2), np.float32)}, str(tmp_path / "o"))
  with pytest.raises(ValueError, match="neither an object-based TF2 "
                     "checkpoint nor an original TF1 MobileBERT checkpoint"):
    restore.checkpoint_format(other)


def test_unreadable_checkpoint(tmp_path):
  (tmp_path / "bad.index").write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="Cannot read checkpoint .*bad: .* "
                     "truncated or corrupted"):
    restore.checkpoint_format(str(tmp_path / "bad"))


# === load_checkpoint ===


def test_load_tf1_checkpoint(model):
  fresh = build_pretrainer(model.config)
  lines = []
  assert restore.load_checkpoint(fresh, model.config, model.prefix,
                                 log=lines.append) == "tf1"
  _assert_weights_equal(fresh, model.reference)
  assert any("Reading" in line for line in lines)  # The converter's log.


def test_load_tf1_checkpoint_with_nsp_head(model):
  fresh = build_pretrainer(model.config, with_nsp=True)
  assert restore.load_checkpoint(fresh, model.config, model.prefix) == "tf1"
  np.testing.assert_array_equal(
      fresh.next_sentence.kernel.numpy(),
      model.variables["cls/seq_relationship/output_weights"].T)


def test_load_our_tf2_checkpoint_file_and_directory(model, tmp_path):
  items = model.reference.checkpoint_items
  prefix = tf.train.Checkpoint(**items).save(str(tmp_path / "ckpt"))
  for path in (prefix, str(tmp_path), prefix + ".index"):
    fresh = build_pretrainer(model.config)
    assert restore.load_checkpoint(fresh, model.config, path) == "tf2"
    _assert_weights_equal(fresh, model.reference)


def test_load_converter_checkpoint_ignores_nsp_head(model, tmp_path):
  summary = convert.convert(model.config, model.prefix,
                            str(tmp_path / "converted"))
  assert summary.with_nsp
  fresh = build_pretrainer(model.config)
  assert restore.load_checkpoint(
      fresh, model.config, summary.tf2_checkpoint_path) == "tf2"
  _assert_weights_equal(fresh, model.reference)


def test_load_tf_models_official_checkpoint(model, tmp_path):
  config = model.config
  theirs = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  tf.train.Checkpoint(**theirs.checkpoint_items).read(
      tf.train.Checkpoint(**model.reference.checkpoint_items).write(
          str(tmp_path / "ours"))).assert_existing_objects_matched()
  prefix = tf.train.Checkpoint(**theirs.checkpoint_items).save(
      str(tmp_path / "tfm"))
  ours = build_pretrainer(config)
  assert restore.load_checkpoint(ours, config, prefix) == "tf2"
  _assert_weights_equal(ours, model.reference)
  inputs = tf1_reference.make_inputs(CONFIG, seed=1)
  inputs = dict(input_word_ids=inputs["input_ids"],
                input_mask=inputs["input_mask"],
                input_type_ids=inputs["token_type_ids"],
                masked_lm_positions=inputs["masked_lm_positions"])
  want, got = theirs(inputs), ours(inputs)
  for name in ("sequence_output", "mlm_logits"):
    assert numerics.relative_error(got[name], want[name]) <= 1e-5


def test_checkpoint_of_another_config_is_rejected(model, tmp_path):
  deeper = model.config.replace(num_hidden_layers=3)
  prefix = tf.train.Checkpoint(
      **build_pretrainer(deeper).checkpoint_items).write(str(tmp_path / "c"))
  with pytest.raises(ValueError, match="does not fit the config: .*; 42 "
                     "checkpoint variables the model does not have: "
                     "encoder/layer_with_weights-3/"):
    restore.load_checkpoint(build_pretrainer(model.config), model.config,
                            prefix)
  wider = model.config.replace(intermediate_size=20)
  with pytest.raises(ValueError, match="shape mismatches"):
    restore.load_checkpoint(build_pretrainer(wider), wider, prefix)


def test_tf1_checkpoint_of_another_config_is_rejected(model):
  deeper = model.config.replace(num_hidden_layers=3)
  with pytest.raises(convert.ConversionError, match="The checkpoint lacks"):
    restore.load_checkpoint(build_pretrainer(deeper), deeper, model.prefix)


def test_nan_in_checkpoint_is_not_restored(model, tmp_path):
  """A value that is NaN in the file fails like one never written."""
  reference = model.reference
  kernel = reference.encoder_network.pooler_layer.kernel
  saved = kernel.numpy()
  kernel.assign(np.full(kernel.shape, np.nan, np.float32))
  try:
    prefix = tf.train.Checkpoint(**reference.checkpoint_items).write(
        str(tmp_path / "nan"))
  finally:
    kernel.assign(saved)
  with pytest.raises(ValueError, match="1 model variables were not restored "
                     "from .* \\(or hold NaN/inf there\\): pooler"):
    restore.load_checkpoint(build_pretrainer(model.config), model.config,
                            prefix)


def test_missing_checkpoint(model, tmp_path):
  with pytest.raises(FileNotFoundError, match="--model_checkpoint_path"):
    restore.load_checkpoint(build_pretrainer(model.config), model.config,
                            str(tmp_path / "nothing"))
