"""Tests of `checkpoints.to_tf1`: a model as an original-layout TF1 checkpoint.

A TF2 checkpoint of random weights goes to TF1 and back through the other
direction's converter (`checkpoints.convert`); every weight must survive bit
for bit, and the TF1 names must be exactly the original's table. (The
fresh-process run is the demo bundle's: tests/test_demo_model.py.)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import convert
from checkpoints import name_map
from checkpoints import tf1_io
from checkpoints import to_tf1
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from tests.helpers import TINY_CONFIG


@pytest.fixture(scope="module")
def config():
  return MobileBertConfig.from_dict(TINY_CONFIG)


def _random_pretrainer(config, with_nsp, seed):
  pretrainer = build_pretrainer(config, with_nsp=with_nsp)
  rng = np.random.default_rng(seed)
  for variable in pretrainer.trainable_variables:
    variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
  return pretrainer


def _weights(pretrainer):
  return {v.name: v.numpy() for v in pretrainer.trainable_variables}


@pytest.fixture(scope="module", params=[True, False], ids=["nsp", "no_nsp"])
def tf2_checkpoint(request, config, tmp_path_factory):
  with_nsp = request.param
  pretrainer = _random_pretrainer(config, with_nsp, seed=int(with_nsp))
  directory = tmp_path_factory.mktemp("tf2")
  tf.train.Checkpoint(**pretrainer.checkpoint_items).save(
      str(directory / "ckpt"))
  return str(directory), pretrainer, with_nsp


def test_round_trip_through_tf1_is_bit_exact(config, tf2_checkpoint, tmp_path):
  directory, pretrainer, with_nsp = tf2_checkpoint
  tf1_prefix = str(tmp_path / "tf1" / "model.ckpt")
  count = to_tf1.to_tf1(config, directory, tf1_prefix, log=lambda line: None)
  written = tf1_io.read_tf1_checkpoint(tf1_prefix)
  assert sorted(written) == sorted(
      name_map.tf1_to_keras(config, with_nsp=with_nsp))
  assert count == len(written)
  assert not [n for n in written if name_map.is_optimizer_variable(n)]
  expected = tf1_io.pretrainer_to_tf1_variables(pretrainer, config)
  for name, value in expected.items():
    np.testing.assert_array_equal(written[name], value, err_msg=name)
  # Back to TF2 with the converter, into a fresh model: the same weights.
  summary = convert.convert(config, tf1_prefix, str(tmp_path / "back"),
                            log=lambda line: None)
  again = build_pretrainer(config, with_nsp=with_nsp)
  tf.train.Checkpoint(**again.checkpoint_items).read(
      summary.tf2_checkpoint_path).assert_existing_objects_matched()
  ours, theirs = _weights(pretrainer), _weights(again)
  assert sorted(ours) == sorted(theirs)
  for name in ours:
    np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def test_next_sentence_head_is_detected_in_both_formats(tf2_checkpoint,
                                                        config, tmp_path):
  directory, _, with_nsp = tf2_checkpoint
  assert to_tf1.has_next_sentence_head(directory) is with_nsp
  tf1_prefix = str(tmp_path / "model.ckpt")
  to_tf1.to_tf1(config, directory, tf1_prefix, log=lambda line: None)
  assert to_tf1.has_next_sentence_head(tf1_prefix) is with_nsp


  if with_nsp:  # --nowith_nsp drops the head.
    to_tf1.to_tf1(config, directory, str(tmp_path / "bare"), with_nsp=False,
                  log=lambda line: None)
    assert not to_tf1.has_next_sentence_head(str(tmp_path / "bare"))


def test_cli_refuses_to_overwrite_and_then_replaces(tf2_checkpoint, config,
                                                    tmp_path, capsys):
  directory, _, _ = tf2_checkpoint
  config_file = tmp_path / "config.json"
  config_file.write_text(config.to_json_string(), encoding="utf-8")
  prefix = tmp_path / "out" / "model.ckpt"
  argv = ["to_tf1", f"--bert_config_file={config_file}",
          f"--checkpoint={directory}", f"--tf1_checkpoint_path={prefix}"]
  assert to_tf1.main(argv) == 0
  assert "Wrote" in capsys.readouterr().out
  before = (tmp_path / "out" / "model.ckpt.index").read_bytes()
  assert to_tf1.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "--overwrite" in err
  assert (tmp_path / "out" / "model.ckpt.index").read_bytes() == before
  assert to_tf1.main(argv + ["--overwrite"]) == 0
  assert sorted(os.listdir(tmp_path / "out")) == [
      "model.ckpt.data-00000-of-00001", "model.ckpt.index"]  # No temporaries.


@pytest.mark.parametrize("flags, message", [
    ([], "--bert_config_file is required"),
    (["--bert_config_file=CONFIG", "--checkpoint=MISSING",
      "--tf1_checkpoint_path=OUT"], "Checkpoint not found"),
    (["--bert_config_file=OTHER", "--checkpoint=TF2", "--tf1_checkpoint_path=OUT"], "does not fit"),
], ids=["no_flags", "missing_checkpoint", "other_config"])
def test_cli_usage_errors(tf2_checkpoint, config, tmp_path, capsys, flags,
                          message):
  directory, _, _ = tf2_checkpoint
  config_file = tmp_path / "config.json"
  config_file.write_text(config.to_json_string(), encoding="utf-8")
  other_file = tmp_path / "other.json"
  other_file.write_text(config.replace(intermediate_size=28).to_json_string(),
                        encoding="utf-8")
  replace = {"CONFIG": str(config_file), "OTHER": str(other_file),
             "MISSING": str(tmp_path / "none"),
             "TF2": directory, "OUT": str(tmp_path / "out" / "model.ckpt")}
  argv = ["to_tf1"] + [f.split("=")[0] + "=" + replace.get(
      f.split("=")[1], f.split("=")[1]) if "=" in f else f for f in flags]
  assert to_tf1.main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and message in err, err
  assert not (tmp_path / "out").exists()
