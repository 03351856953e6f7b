"""Tests of `checkpoints.convert`, the TF1 -> TF2 checkpoint converter.

The TF1 checkpoints are built here with the original variable names and
random non-trivial values (`tests/tf1_reference.py`), optimizer slots and
`global_step` included. A converted checkpoint must give the outputs of an
independent reader of the same TF1 checkpoint:

* transformers' PyTorch `load_tf_weights_in_mobilebert` +
  `MobileBertForPreTraining` (opt, tiny, plain). Its deviations from the
  original, handled here: its "gelu" is the exact erf form (the original's is
  transformers' "gelu_new"); its embedding and FFN-output LayerNorms use eps
  1e-5 (patched to the original 1e-12 after construction); its loader skips
  unknown names silently, so every parameter starts as NaN and none may stay
  NaN, except the two it builds but the original layout has no variable for
  (`embedding_transformation` without trigram/projection, `bottleneck.
  attention` when `use_bottleneck_attention` wins).
* tf-models-official's own converter + pretrainer (teacher, which
  transformers cannot express). It drops the NSP head, so NSP logits are
  checked against NumPy from the TF1 tensors.
* the NumPy float64 re-implementation of the original (all variants).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from checkpoints import convert
from checkpoints import name_map
from checkpoints import tf1_io
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import files
from mobilebert_tf import build_pretrainer
from mobilebert_tf import model_utils
from mobilebert_tf.config import PRESET_DIR
from tests import tf1_reference as ref
from tests.helpers import transformers_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-5
ENGLISH = "uncased_L-24_H-128_B-512_A-4_F-4_OPT"


# === Helpers ===


def _tfm_model_utils():
  from official.projects.mobilebert import model_utils as tfm_utils
  # tf-models-official 2.20.0's model_utils uses tf_keras without importing it.
  tfm_utils.tf_keras = tf_keras
  return tfm_utils


def _write_tf1(variables, directory, name="bert_model.ckpt"):
  os.makedirs(directory, exist_ok=True)
  return tf1_io.write_tf1_checkpoint(variables, os.path.join(directory, name))


def _write_config(config_dict, path):
  with open(path, "w") as f:
    json.dump(config_dict, f)
  return str(path)


def _tf_inputs(inputs):
  """`tf1_reference.make_inputs` as the pretrainers' input dict."""
  return dict(
      input_word_ids=tf.constant(inputs["input_ids"]),
      input_mask=tf.constant(inputs["input_mask"]),
      input_type_ids=tf.constant(inputs["token_type_ids"]),
      masked_lm_positions=tf.constant(inputs["masked_lm_positions"]))


def _our_outputs(pretrainer, inputs):
  out = pretrainer(_tf_inputs(inputs), training=False)
  result = {"sequence_output": out["sequence_output"].numpy(),
            "pooled_output": out["pooled_output"].numpy(),
            "mlm_logits": out["mlm_logits"].numpy()}
  if "next_sentence" in out:
    result["nsp_logits"] = out["next_sentence"].numpy()
  return result


def _hf_unused_parameters(cfg):
  """transformers parameters the original layout has no variable for."""
  unused = set()
  if not cfg["trigram_input"] and cfg["embedding_size"] == cfg["hidden_size"]:
    unused |= {"mobilebert.embeddings.embedding_transformation.weight",
               "mobilebert.embeddings.embedding_transformation.bias"}
  if (cfg["use_bottleneck"] and cfg["use_bottleneck_attention"] and
      cfg["key_query_shared_bottleneck"]):
    for i in range(cfg["num_hidden_layers"]):
      p = f"mobilebert.encoder.layer.{i}.bottleneck.attention"
      unused |= {f"{p}.dense.weight", f"{p}.dense.bias",
                 f"{p}.LayerNorm.weight", f"{p}.LayerNorm.bias"}
  return unused


def _hf_outputs(cfg, tf1_prefix, inputs):
  """transformers' reading of the TF1 checkpoint, float32."""
  import torch
  import transformers
  from transformers.models.mobilebert import modeling_mobilebert

  cfg = MobileBertConfig.from_dict(cfg).to_dict()  # original defaults filled
  hf_config = transformers_config(cfg)
  assert hf_config.true_hidden_size == (
      cfg["intra_bottleneck_size"] if cfg["use_bottleneck"]
      else cfg["hidden_size"])
  model = transformers.MobileBertForPreTraining(hf_config)
  with torch.no_grad():
    for p in model.parameters():
      p.fill_(float("nan"))
  modeling_mobilebert.load_tf_weights_in_mobilebert(model, hf_config,
                                                    tf1_prefix)
  for module in model.modules():
    if isinstance(module, torch.nn.LayerNorm):
      module.eps = 1e-12
  still_nan = sorted(
      n for n, p in model.named_parameters()
      if p.numel() and torch.isnan(p).any() and
      n not in _hf_unused_parameters(cfg))
  assert not still_nan, f"transformers did not load: {still_nan}"
  model.eval()
  with torch.no_grad():
    out = model(
        input_ids=torch.from_numpy(inputs["input_ids"]).long(),
        attention_mask=torch.from_numpy(inputs["input_mask"]).long(),
        token_type_ids=torch.from_numpy(inputs["token_type_ids"]).long(),
        output_hidden_states=True)
  positions = inputs["masked_lm_positions"].astype(np.int64)
  return {
      "sequence_output": out.hidden_states[-1].numpy(),
      "mlm_logits": np.take_along_axis(out.prediction_logits.numpy(),
                                       positions[..., None], axis=1),
      "nsp_logits": out.seq_relationship_logits.numpy(),
  }


def _tfm_outputs(cfg, tf1_prefix, inputs, tmp_dir, variables):
  """tf-models-official's converter + pretrainer reading the TF1 checkpoint."""
  from official.projects.mobilebert import tf2_model_checkpoint_converter as tc
  tfm_utils = _tfm_model_utils()
  config_path = _write_config(cfg, os.path.join(tmp_dir, "tfm_config.json"))
  tfm_config = tfm_utils.BertConfig.from_json_file(config_path)
  out_prefix = os.path.join(tmp_dir, "tfm", "ckpt")
  # Its converter loads a name-based checkpoint by Keras variable *names*,
  # which earlier models in this process would have made unique
  # ("mobile_bert_embedding_10/..."): start from a fresh Keras session.
  tf_keras.backend.clear_session()
  # What its main() does without --use_model_prefix, on a copy of the table.
  replacements = [("bert/", "")] + list(tc._NAME_REPLACEMENT[1:])
  tc.convert(tf1_prefix, out_prefix, replacements, [], tfm_config,
             tc._EXCLUDE_PATTERNS)
  pretrainer = tfm_utils.create_mobilebert_pretrainer(tfm_config)
  tf.train.Checkpoint(**pretrainer.checkpoint_items).restore(
      tf.train.latest_checkpoint(os.path.dirname(out_prefix))
  ).assert_consumed()
  out = pretrainer(_tf_inputs(inputs), training=False)
  pooled = out["pooled_output"].numpy()
  # It drops the NSP head: NSP logits from the TF1 tensors in NumPy.
  nsp = (pooled @ variables["cls/seq_relationship/output_weights"].T +
         variables["cls/seq_relationship/output_bias"])
  return {"sequence_output": out["sequence_output"].numpy(),
          "mlm_logits": out["mlm_logits"].numpy(), "nsp_logits": nsp}


def _assert_close(actual, expected, keys, what):
  errors = {k: ref.relative_error(actual[k], expected[k]) for k in keys}
  bad = {k: e for k, e in errors.items() if not e <= TOLERANCE}
  assert not bad, f"{what}: relative errors above {TOLERANCE}: {bad}"


# === Conversion equals independent readers ===

READERS = {"opt": "transformers", "tiny": "transformers",
           "teacher": "tf-models-official", "plain": "transformers"}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("variant", sorted(READERS))
def test_converted_model_matches_independent_reader(variant, tmp_path):
  cfg = dict(ref.TEST_CONFIGS[variant])
  config = MobileBertConfig.from_dict(cfg)
  variables = ref.random_tf1_variables(cfg, seed=7, with_optimizer_slots=True)
  tf1_prefix = _write_tf1(variables, str(tmp_path / "tf1"))
  out = str(tmp_path / "out" / "mobilebert")

  summary = convert.convert(config, tf1_prefix, out)

  table = name_map.tf1_to_keras(config, with_nsp=True)
  assert summary.converted == summary.verified == len(table)
  assert summary.dropped == {"adam_m": len(table), "adam_v": len(table),
                             "global_step": 1}
  assert summary.converted + sum(summary.dropped.values()) == len(variables)
  assert summary.with_nsp and not summary.unmapped
  assert sorted(os.listdir(tmp_path / "out")) == [
      "mobilebert.data-00000-of-00001", "mobilebert.index"]
  assert summary.output_files[0] == out + ".index"

  ours = build_pretrainer(config, with_nsp=True)
  tf.train.Checkpoint(**ours.checkpoint_items).restore(out).assert_consumed()
  assert summary.parameters == ours.count_params()
  inputs = ref.make_inputs(cfg, seed=3)
  actual = _our_outputs(ours, inputs)
  keys = ("sequence_output", "mlm_logits", "nsp_logits")

  expected = ref.reference_forward(variables, cfg, **inputs)
  _assert_close(actual, expected, keys, f"{variant} vs NumPy reference")
  if READERS[variant] == "transformers":
    peer = _hf_outputs(cfg, tf1_prefix, inputs)
  else:
    peer = _tfm_outputs(cfg, tf1_prefix, inputs, str(tmp_path), variables)
  _assert_close(actual, peer, keys, f"{variant} vs {READERS[variant]}")


def test_restores_into_tfm_pretrainer(tmp_path):
  cfg = dict(ref.TEST_CONFIGS["tiny"])
  config_path = _write_config(cfg, tmp_path / "config.json")
  variables = ref.random_tf1_variables(cfg, seed=2)
  tf1_prefix = _write_tf1(variables, str(tmp_path / "tf1"))
  out = str(tmp_path / "out" / "ckpt")
  convert.convert(config_path, tf1_prefix, out)
  tfm_utils = _tfm_model_utils()
  theirs = tfm_utils.create_mobilebert_pretrainer(
      tfm_utils.BertConfig.from_json_file(config_path))
  tf.train.Checkpoint(**theirs.checkpoint_items).restore(
      out).assert_existing_objects_matched().expect_partial()
  inputs = ref.make_inputs(cfg, seed=1)
  out_theirs = theirs(_tf_inputs(inputs), training=False)
  expected = ref.reference_forward(variables, cfg, **inputs)
  _assert_close({k: out_theirs[k].numpy() for k in ("sequence_output",
                                                    "mlm_logits")},
                expected, ("sequence_output", "mlm_logits"),
                "tf-models-official restored from our conversion")


@pytest.mark.slow
def test_full_size_english_checkpoint(tmp_path):
  config_path = os.path.join(PRESET_DIR, ENGLISH + ".json")
  with open(config_path) as f:
    cfg = json.load(f)
  variables = ref.random_tf1_variables(cfg, seed=5)
  tf1_prefix = tf1_io.write_tf1_checkpoint(
      variables, str(tmp_path / "tf1" / "mobilebert_variables.ckpt"))
  out = str(tmp_path / "out" / "mobilebert")
  start = time.time()
  summary = convert.convert(config_path, tf1_prefix, out, log=print)
  print(f"Full-size English conversion: {time.time() - start:.1f} s")

  assert summary.parameters_by_part["encoder"] == 24_581_888
  assert summary.parameters == 36_596_538 + 2 * 512 + 2  # + NSP head
  assert summary.converted == summary.verified == len(variables)

  ours = model_utils.create_mobilebert_pretrainer(
      model_utils.BertConfig.from_json_file(config_path))
  tf.train.Checkpoint(**ours.checkpoint_items).restore(
      out).assert_existing_objects_matched().expect_partial()
  assert ours.encoder_network.count_params() == 24_581_888
  assert ours.count_params() == 36_596_538
  np.testing.assert_array_equal(
      ours.encoder_network.get_embedding_table().numpy(),
      variables["bert/embeddings/word_embeddings"])

  tfm_utils = _tfm_model_utils()
  theirs = tfm_utils.create_mobilebert_pretrainer(
      tfm_utils.BertConfig.from_json_file(config_path))
  tf.train.Checkpoint(**theirs.checkpoint_items).restore(
      out).assert_existing_objects_matched().expect_partial()
  assert theirs.encoder_network.count_params() == 24_581_888
  assert theirs.count_params() == 36_596_538

  # Every value landed at its object path in theirs: written back, their
  # checkpoint equals ours key by key, bit for bit.
  again = tf.train.Checkpoint(**theirs.checkpoint_items).write(
      str(tmp_path / "again" / "ckpt"))
  ours_file, theirs_file = (tf.train.load_checkpoint(p) for p in (out, again))
  keys = {n for n, _ in tf.train.list_variables(again)} - {
      "_CHECKPOINTABLE_OBJECT_GRAPH"}
  assert len(keys) == summary.converted - 2  # all but the NSP head
  for key in sorted(keys):
    assert ours_file.get_tensor(key).tobytes() == (
        theirs_file.get_tensor(key).tobytes()), key

  # The same numbers in, the same numbers out: embeddings and first block.
  # (Further down, 24 NoNorm blocks with random weights grow activations to
  # ~1e14, where attention is an argmax and float32 rounding differences
  # between two implementations can flip it: later outputs are no test.)
  inputs = ref.make_inputs(cfg, batch=2, seq=10, num_predictions=3, seed=0)
  ours_out = ours(_tf_inputs(inputs), training=False)
  theirs_out = theirs(_tf_inputs(inputs), training=False)
  # tf-models-official's encoder_outputs start with the embedding output.
  first = {"embedding_output": ours_out["embedding_output"].numpy(),
           "block_0": ours_out["encoder_outputs"][0].numpy()}
  first_theirs = {"embedding_output": theirs_out["encoder_outputs"][0].numpy(),
                  "block_0": theirs_out["encoder_outputs"][1].numpy()}
  _assert_close(first, first_theirs, tuple(first),
                "ours vs tf-models-official")


# === Bad input: exit code 2, one line on stderr, nothing written ===


@pytest.fixture(scope="module")
def tf1_opt(tmp_path_factory):
  """A tiny OPT TF1 checkpoint (slots, global_step) and its config file."""
  directory = tmp_path_factory.mktemp("tf1_opt")
  cfg = dict(ref.TEST_CONFIGS["opt"])
  variables = ref.random_tf1_variables(cfg, seed=1, with_optimizer_slots=True)
  prefix = _write_tf1(variables, str(directory))
  config = _write_config(cfg, directory / "bert_config.json")
  return dict(cfg=cfg, variables=variables, prefix=prefix, config=config,
              dir=str(directory))


def _run(config, tf1, out, *extra):
  argv = ["convert", f"--bert_config_file={config}",
          f"--tf1_checkpoint_path={tf1}", f"--tf2_checkpoint_path={out}"]
  return convert.main(argv + list(extra))


def _assert_usage_error(code, capsys, *fragments):
  captured = capsys.readouterr()
  assert code == 2, captured
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1, captured.err
  assert lines[0].startswith("python -m checkpoints.convert: error: ")
  assert "Traceback" not in captured.err + captured.out
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  return lines[0]


def _copy_checkpoint(tf1_opt, tmp_path):
  directory = shutil.copytree(tf1_opt["dir"], tmp_path / "tf1")
  return str(directory / "bert_model.ckpt")


def test_missing_checkpoint(tf1_opt, tmp_path, capsys):
  out = tmp_path / "out" / "ckpt"
  code = _run(tf1_opt["config"], tmp_path / "nowhere" / "model.ckpt", out)
  _assert_usage_error(code, capsys, "Checkpoint not found",
                      "nowhere/model.ckpt.index does not exist",
                      "--tf1_checkpoint_path")
  assert not (tmp_path / "out").exists()


def test_missing_checkpoint_suggests_the_prefixes_there(tf1_opt, tmp_path,
                                                        capsys):
  code = _run(tf1_opt["config"], os.path.join(tf1_opt["dir"], "model.ckpt"),
              tmp_path / "out" / "ckpt")
  _assert_usage_error(code, capsys, "Checkpoint not found",
                      "Checkpoints in that directory: ", "bert_model.ckpt")
  assert not (tmp_path / "out").exists()


def test_empty_directory(tf1_opt, tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  code = _run(tf1_opt["config"], tmp_path / "empty", tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "No checkpoint in directory",
                      "--tf1_checkpoint_path takes a checkpoint prefix")
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".index", ".data-00000-of-00001"])
def test_file_instead_of_prefix_is_accepted(tf1_opt, tmp_path, capsys,
                                            suffix):
  out = tmp_path / "out" / "ckpt"
  code = _run(tf1_opt["config"], tf1_opt["prefix"] + suffix, out)
  captured = capsys.readouterr()
  assert code == 0, captured.err
  assert f"using the prefix {tf1_opt['prefix']}" in captured.out
  assert sorted(os.listdir(tmp_path / "out")) == [
      "ckpt.data-00000-of-00001", "ckpt.index"]


def test_directory_with_one_checkpoint_is_accepted(tf1_opt, tmp_path,
                                                   capsys):
  code = _run(tf1_opt["config"], tf1_opt["dir"], tmp_path / "out" / "ckpt")
  assert code == 0
  assert f"using the checkpoint {tf1_opt['prefix']}" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated_data", "flipped_data_byte",
                                    "missing_data", "garbage_index",
                                    "empty_index"])
def test_corrupted_checkpoint(tf1_opt, tmp_path, capsys, damage):
  prefix = _copy_checkpoint(tf1_opt, tmp_path)
  data, index = prefix + ".data-00000-of-00001", prefix + ".index"
  if damage == "truncated_data":
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)
  elif damage == "flipped_data_byte":
    with open(data, "r+b") as f:
      f.seek(100)
      byte = f.read(1)
      f.seek(100)
      f.write(bytes([byte[0] ^ 0xFF]))
  elif damage == "missing_data":
    os.remove(data)
  elif damage == "garbage_index":
    with open(index, "wb") as f:
      f.write(b"not a checkpoint index" * 10)
  else:
    open(index, "wb").close()
  code = _run(tf1_opt["config"], prefix, tmp_path / "out" / "ckpt")
  _assert_usage_error(code, capsys, "Cannot read",
                      "truncated or corrupted")
  assert not (tmp_path / "out").exists()


def test_config_file_missing(tf1_opt, tmp_path, capsys):
  code = _run(tmp_path / "nope.json", tf1_opt["prefix"], tmp_path / "out/c")
  _assert_usage_error(code, capsys, "--bert_config_file",
                      "config file not found", "nope.json")
  assert not (tmp_path / "out").exists()


def test_config_preset_name_is_accepted(tf1_opt, tmp_path, capsys):
  """A preset name is read as that config (which this checkpoint misses)."""
  code = _run("uncased_L-24_H-128_B-512_A-4_F-4_OPT", tf1_opt["prefix"],
              tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "The checkpoint lacks 1024 of the "
                      "model's 1119 variables", "num_hidden_layers=24")
  assert not (tmp_path / "out").exists()


def test_stale_temporary_of_a_crashed_run_is_removed(tf1_opt, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()  # A pid that no longer runs.
  stale = out / f".ckpt.tmp-{process.pid}-crashed"
  stale.mkdir()
  (stale / "ckpt.index").write_bytes(b"half")
  assert _run(tf1_opt["config"], tf1_opt["prefix"], out / "ckpt") == 0
  assert sorted(os.listdir(out)) == ["ckpt.data-00000-of-00001",
                                     "ckpt.index"]


@pytest.mark.parametrize("text,fragment", [
    ("{'vocab_size': 30522,}", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"vocab_size": 72, "normalization_type": "batch_norm"}',
     "normalization_type"),
], ids=["not_json", "not_object", "invalid_value"])
def test_config_file_invalid(tf1_opt, tmp_path, capsys, text, fragment):
  path = tmp_path / "bad.json"
  path.write_text(text)
  code = _run(path, tf1_opt["prefix"], tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "--bert_config_file", fragment)
  assert not (tmp_path / "out").exists()


def test_tf2_checkpoint_instead_of_tf1(tf1_opt, tmp_path, capsys):
  config = MobileBertConfig.from_dict(tf1_opt["cfg"])
  pretrainer = build_pretrainer(config)
  tf2_prefix = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(
      str(tmp_path / "tf2" / "ckpt"))
  code = _run(tf1_opt["config"], tf2_prefix, tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "TF2 object-based checkpoint",
                      "_CHECKPOINTABLE_OBJECT_GRAPH", "needs no conversion")
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change,fragments", [
    (dict(vocab_size=80),
     ["Shape mismatch for encoder/embedding_layer/word_embedding/embeddings "
      "(from bert/embeddings/word_embeddings): checkpoint (72, 16) vs model "
      "(80, 16).", "Does --bert_config_file match the checkpoint?",
      "The checkpoint's bert/embeddings/word_embeddings implies vocab_size=72, "
      "embedding_size=16, the config has "
      "vocab_size=80, embedding_size=16"]),
    (dict(hidden_size=48),
     ["Shape mismatch for encoder/embedding_layer/word_embedding_proj/kernel "
      "(from bert/embeddings/embedding_transformation/kernel): checkpoint "
      "(48, 32) vs model (48, 48)."]),
    (dict(num_hidden_layers=1),
     ["TF1 variables have no mapping",
      "bert/encoder/layer_1/", "The checkpoint has 2 transformer layers",
      "num_hidden_layers=1"]),
    (dict(num_hidden_layers=3),
     ["The checkpoint lacks", "bert/encoder/layer_2/",
      "The checkpoint has 2 transformer layers", "num_hidden_layers=3"]),
    (dict(num_feedforward_networks=2),
     ["The checkpoint has 3 feed-forward networks per layer",
      "num_feedforward_networks=2"]),
    (dict(normalization_type="layer_norm"),
     ["The checkpoint lacks", "bert/embeddings/LayerNorm/gamma",
      "The checkpoint's normalization is FakeLayerNorm"]),
    (dict(use_bottleneck=False),
     ["TF1 variables have no mapping", "bottleneck/input/dense/kernel",
      "The checkpoint has bottlenecks", "use_bottleneck=false"]),
    (dict(trigram_input=False),
     ["Shape mismatch for encoder/embedding_layer/word_embedding_proj/kernel",
      "checkpoint (48, 32) vs model (16, 32)", "implies trigram_input=true"]),
], ids=["vocab_size", "hidden_size", "fewer_layers", "more_layers",
        "feedforward_networks", "normalization", "bottleneck", "trigram"])
def test_config_does_not_fit(tf1_opt, tmp_path, capsys, change, fragments):
  config = _write_config(dict(tf1_opt["cfg"], **change),
                         tmp_path / "config.json")
  code = _run(config, tf1_opt["prefix"], tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, *fragments)
  assert not (tmp_path / "out").exists()


def test_output_exists(tf1_opt, tmp_path, capsys):
  out = tmp_path / "out" / "ckpt"
  assert _run(tf1_opt["config"], tf1_opt["prefix"], out) == 0
  capsys.readouterr()
  before = {p: (tmp_path / "out" / p).read_bytes()
            for p in os.listdir(tmp_path / "out")}
  code = _run(tf1_opt["config"], tf1_opt["prefix"], out)
  _assert_usage_error(code, capsys, f"{out}.index already exists",
                      "--overwrite")
  after = {p: (tmp_path / "out" / p).read_bytes()
           for p in os.listdir(tmp_path / "out")}
  assert after == before  # untouched, no temporary directory left


def test_overwrite_replaces_and_removes_stale_shards(tf1_opt, tmp_path,
                                                     capsys):
  out = tmp_path / "out" / "ckpt"
  out.parent.mkdir()
  (tmp_path / "out" / "ckpt.index").write_bytes(b"old")
  (tmp_path / "out" / "ckpt.data-00000-of-00002").write_bytes(b"old")
  (tmp_path / "out" / "other.txt").write_text("kept")
  assert _run(tf1_opt["config"], tf1_opt["prefix"], out, "--overwrite") == 0
  assert sorted(os.listdir(tmp_path / "out")) == [
      "ckpt.data-00000-of-00001", "ckpt.index", "other.txt"]
  assert dict(tf.train.list_variables(str(out)))  # a real checkpoint now


def test_staged_prefix_moves_the_index_last(tmp_path, monkeypatch):
  """Checkpoint writers publish data files first, the index last."""
  moved = []
  replace = tf1_io.files.replace
  monkeypatch.setattr(tf1_io.files, "replace", lambda staged, target: (
      moved.append(os.path.basename(target)), replace(staged, target)))
  prefix = str(tmp_path / "c")
  tf1_io.write_tf1_checkpoint({"a": np.ones(2, np.float32)}, prefix)
  assert moved == ["c.data-00000-of-00001", "c.index"]
  np.testing.assert_array_equal(tf1_io.read_tf1_checkpoint(prefix)["a"],
                                [1.0, 1.0])
  with pytest.raises(FileExistsError, match="c.index already exists"):
    tf1_io.write_tf1_checkpoint({"a": np.zeros(2)}, prefix, overwrite=False)
  with pytest.raises(RuntimeError, match="boom"):
    with files.staged_prefix(str(tmp_path / "d")) as tmp_prefix:
      tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=["a"],
                        shape_and_slices=[""], tensors=[np.ones(2)])
      raise RuntimeError("boom")
  assert sorted(os.listdir(tmp_path)) == ["c.data-00000-of-00001", "c.index"]


def test_unmapped_variables(tf1_opt, tmp_path, capsys):
  variables = dict(tf1_opt["variables"])
  extra = {"bert/encoder/layer_0/attention/self/extra/kernel":
               np.full((4, 4), 0.5, np.float32),
           "cls/squad/output_weights": np.full((2, 32), 0.25, np.float32)}
  prefix = _write_tf1(dict(variables, **extra), str(tmp_path / "tf1"))
  out = tmp_path / "out" / "ckpt"
  code = _run(tf1_opt["config"], prefix, out)
  _assert_usage_error(
      code, capsys, "2 TF1 variables have no mapping: "
      "bert/encoder/layer_0/attention/self/extra/kernel, "
      "cls/squad/output_weights.", "--allow_unmapped")
  assert not (tmp_path / "out").exists()

  summary = convert.convert(tf1_opt["config"], prefix, str(out),
                            allow_unmapped=True)
  assert summary.unmapped == sorted(extra)
  assert summary.dropped["unmapped (--allow_unmapped)"] == 2
  assert os.path.exists(f"{out}.index")


def test_missing_required_flag(tf1_opt, tmp_path, capsys):
  code = convert.main(["convert", f"--tf1_checkpoint_path={tf1_opt['prefix']}",
                       f"--tf2_checkpoint_path={tmp_path / 'out' / 'c'}"])
  _assert_usage_error(code, capsys, "--bert_config_file is required")
  code = convert.main(["convert", "--no_such_flag=1"])
  _assert_usage_error(code, capsys, "no_such_flag")
  assert not (tmp_path / "out").exists()


def test_output_prefix_is_input_or_directory(tf1_opt, tmp_path, capsys):
  code = _run(tf1_opt["config"], tf1_opt["prefix"], tf1_opt["prefix"],
              "--overwrite")
  _assert_usage_error(code, capsys, "is the TF1 checkpoint itself")
  code = _run(tf1_opt["config"], tf1_opt["prefix"], str(tmp_path) + os.sep)
  _assert_usage_error(code, capsys, "must be a file prefix")
  assert os.listdir(tmp_path) == []


# === NSP head and MLM head presence ===


def test_nsp_head_absent_or_dropped(tf1_opt, tmp_path, capsys):
  cfg = tf1_opt["cfg"]
  no_nsp = ref.random_tf1_variables(cfg, seed=4, with_nsp=False)
  prefix = _write_tf1(no_nsp, str(tmp_path / "tf1"))
  out = str(tmp_path / "a" / "ckpt")
  summary = convert.convert(tf1_opt["config"], prefix, out)
  assert not summary.with_nsp
  # Exactly tf-models-official's / create_mobilebert_pretrainer's graph.
  ours = model_utils.create_mobilebert_pretrainer(
      model_utils.BertConfig.from_json_file(tf1_opt["config"]))
  tf.train.Checkpoint(**ours.checkpoint_items).restore(out).assert_consumed()

  code = _run(tf1_opt["config"], prefix, tmp_path / "b" / "c", "--with_nsp")
  _assert_usage_error(code, capsys, "lacks 2", "cls/seq_relationship",
                      "--nowith_nsp")

  code = _run(tf1_opt["config"], tf1_opt["prefix"], tmp_path / "c" / "c",
              "--nowith_nsp")
  assert code == 0
  assert "NSP head (--nowith_nsp)" in capsys.readouterr().out


def test_not_a_mobilebert_checkpoint(tf1_opt, tmp_path, capsys):
  prefix = _write_tf1({"dense/kernel": np.full((3, 2), 0.5, np.float32),
                       "global_step": np.array(7, np.int64)},
                      str(tmp_path / "tf1"))
  code = _run(tf1_opt["config"], prefix, tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "The checkpoint lacks 93 of the model's 93",
                      "bert/embeddings/word_embeddings",
                      "no bert/ variables")
  assert not (tmp_path / "out").exists()


def test_mlm_head_missing(tf1_opt, tmp_path, capsys):
  variables = ref.random_tf1_variables(tf1_opt["cfg"], seed=4, with_mlm=False)
  prefix = _write_tf1(variables, str(tmp_path / "tf1"))
  code = _run(tf1_opt["config"], prefix, tmp_path / "out" / "c")
  _assert_usage_error(code, capsys, "The checkpoint lacks",
                      "cls/predictions/transform/dense/kernel")
  assert not (tmp_path / "out").exists()


# === Command line ===


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  env["PYTHONPATH"] = os.pathsep.join(
      [REPO] + [p for p in [env.get("PYTHONPATH")] if p])
  return env


def test_help_subprocess():
  result = subprocess.run(
      [sys.executable, "-m", "checkpoints.convert", "--help"], cwd=REPO,
      env=_env(), capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
  for flag in ("--bert_config_file", "--tf1_checkpoint_path",
               "--tf2_checkpoint_path", "--overwrite", "--allow_unmapped",
               "--[no]with_nsp"):
    assert flag in result.stdout


def test_conversion_subprocess(tf1_opt, tmp_path):
  out = tmp_path / "out" / "mobilebert"
  result = subprocess.run(
      [sys.executable, "-m", "checkpoints.convert",
       f"--bert_config_file={tf1_opt['config']}",
       f"--tf1_checkpoint_path={tf1_opt['prefix']}",
       f"--tf2_checkpoint_path={out}"],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert "Conversion summary" in result.stdout
  assert "dropped:         191 (95 adam_m, 95 adam_v, 1 global_step)" in (
      result.stdout)
  assert "[3/4] layer 1" in result.stdout.replace("[ ", "[")
  assert sorted(os.listdir(tmp_path / "out")) == [
      "mobilebert.data-00000-of-00001", "mobilebert.index"]
