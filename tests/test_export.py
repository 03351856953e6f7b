"""TF-Hub SavedModel export: round trip, contract, rebuild, CLI.

One export per module (`exported`): a tiny MobileBERT (the OPT layout with a
pooler) filled with random values under the ORIGINAL TF1 names, written as a
TF1 checkpoint with optimizer slots, with a vocabulary built here, and
exported by the CLI's demonstration run (no flags; the demo files replaced by
these), converted on the fly, over an earlier demo export. The source vocab
file is deleted right after the export, so every load below also proves that
the SavedModels do not need it. Outputs are compared with the in-memory model
(restored separately) and with the NumPy reference of the original TF1
forward pass (`tests/tf1_reference.py`). Checkpoint restoring is tested in
`tests/test_restore.py`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tensorflow_text  # noqa: F401  (ops of the preprocessor SavedModel)
import tf_keras

from checkpoints import name_map
from checkpoints import restore
from checkpoints import tf1_io
from export import encoder_model
from export import encoder_savedmodel
from export import pipeline
from export import preprocessor_savedmodel
from export import rebuild
from export import to_savedmodel
from export import verify
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from mobilebert_tf import fill_mask
from mobilebert_tf.encoder import ENCODER_INPUTS
from mobilebert_tf.numerics import relative_error
from mobilebert_tf.vocab import SPECIAL_TOKENS
from tests import tf1_reference

TOLERANCE = 1e-5
CONFIG = dict(tf1_reference.TEST_CONFIGS["opt_pooler"])  # vocab 72, 2 blocks
# The demonstration's preprocessor length: min(128, max_position_embeddings).
SEQ_LENGTH = CONFIG["max_position_embeddings"]

# Variables of the exported encoder for CONFIG, pinned: 89 trainable encoder
# weights (embedding 7, 2 blocks x 40 with 3 FFNs each, pooler 2) plus the
# non-trainable `do_lower_case`. The `.mlm` model adds the head's 6 (transform
# kernel/bias, layer norm gamma/beta, output bias, extra output weights).
# A change here means the `_auto_track_sub_layers` workaround in
# `_compat.attach_without_weights` (or the layer structure) changed.
NUM_ENCODER_TRAINABLE = 89
NUM_ENCODER_VARIABLES = 90
NUM_MLM_VARIABLES = 95

# Words for the test vocabulary; the rest of the 72 ids are "##" pieces.
_WORDS = ("the a of to and is in it for list file return value none new "
          "raise if not does exist default create hello world error name "
          "type sum , . ! ( ) b c d e f g h i j k l m n o p q r s t u v w x "
          "y z")
SPECIAL = list(SPECIAL_TOKENS)


def make_vocab(size):
  tokens = SPECIAL + _WORDS.split()
  tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
  assert len(tokens) >= size
  return tokens[:size]


def write_lines(path, lines):
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return str(path)


def write_model_files(directory, config=CONFIG, seed=0, name="model.ckpt"):
  """bert_config.json, vocab.txt and a TF1 checkpoint (with Adam slots)."""
  os.makedirs(directory, exist_ok=True)
  config_file = os.path.join(directory, "bert_config.json")
  with open(config_file, "w") as f:
    json.dump(config, f)
  vocab_file = write_lines(os.path.join(directory, "vocab.txt"),
                           make_vocab(config["vocab_size"]))
  variables = tf1_reference.random_tf1_variables(
      config, seed=seed, with_optimizer_slots=True)
  prefix = tf1_reference.write_tf1_checkpoint(
      variables, os.path.join(directory, name))
  return types.SimpleNamespace(config_file=config_file, vocab_file=vocab_file,
                               checkpoint=prefix, variables=variables)


def cli_args(files, export_path, *extra):
  return ["to_savedmodel", f"--bert_config_file={files.config_file}",
          f"--model_checkpoint_path={files.checkpoint}",
          f"--vocab_file={files.vocab_file}", "--do_lower_case=true",
          f"--export_path={export_path}", *extra]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """Runs the CLI's demonstration once, over an earlier demo export."""
  root = tmp_path_factory.mktemp("export")
  demo_dir = str(root / "demo")
  files = write_model_files(demo_dir, name=to_savedmodel.DEMO_CHECKPOINT)
  export_path = str(root / to_savedmodel.DEMO_EXPORT_PATH)
  for part in ("encoder", "preprocessor"):  # An earlier demo export.
    os.makedirs(os.path.join(export_path, part))
  with open(os.path.join(export_path, "encoder", "stale.txt"), "w") as f:
    f.write("replaced")
  stdout = io.StringIO()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(to_savedmodel, "DEMO_DIR", demo_dir)
    patch.chdir(root)
    with contextlib.redirect_stdout(stdout):
      code = to_savedmodel.main(["to_savedmodel"])
  assert code == 0, stdout.getvalue()
  vocab = make_vocab(CONFIG["vocab_size"])
  os.remove(files.vocab_file)  # The SavedModels must not need it.

  config = MobileBertConfig.from_dict(CONFIG)
  pretrainer = build_pretrainer(config)
  restore.load_checkpoint(pretrainer, config, files.checkpoint)
  preprocessor_dir = os.path.join(export_path, "preprocessor")
  return types.SimpleNamespace(
      root=str(root), files=files, path=export_path, stdout=stdout.getvalue(),
      preprocessor=hub.load(preprocessor_dir),
      encoder_dir=os.path.join(export_path, "encoder"),
      preprocessor_dir=preprocessor_dir,
      config=config, pretrainer=pretrainer, vocab=vocab,
      core_model=encoder_model.build_export_model(pretrainer),
      layer=hub.KerasLayer(os.path.join(export_path, "encoder"),
                           trainable=True))


def encoder_inputs(batch=3, seq=12, seed=0):
  raw = tf1_reference.make_inputs(CONFIG, batch=batch, seq=seq, seed=seed)
  return raw, dict(input_word_ids=raw["input_ids"],
                   input_mask=raw["input_mask"],
                   input_type_ids=raw["token_type_ids"])


def find_lambda_layers(layer):
  if isinstance(layer, tf_keras.layers.Lambda):
    return [layer]
  return [found for sub in getattr(layer, "layers", [])
          for found in find_lambda_layers(sub)]


# === The encoder SavedModel ===


def test_export_directory_layout(exported):
  assert sorted(os.listdir(exported.path)) == ["encoder", "preprocessor"]
  assert "stale.txt" not in os.listdir(exported.encoder_dir)  # Replaced.
  assert sorted(os.listdir(os.path.join(exported.encoder_dir, "assets"))) == [
      "bert_config.json", "vocab.txt"]
  parent = os.path.dirname(exported.path)
  leftovers = [n for n in os.listdir(parent) if n.startswith(".")]
  assert not leftovers  # No temporary directories left beside the target.


@pytest.mark.parametrize("batch,seq", [(3, 12), (1, 64), (2, 1)],
                         ids=["padded", "max_length", "one_token"])
def test_outputs_equal_model_and_tf1_reference(exported, batch, seq):
  raw, inputs = encoder_inputs(batch, max(seq, 5))
  inputs = {k: v[:, :seq] for k, v in inputs.items()}
  raw = dict(input_ids=inputs["input_word_ids"],
             input_mask=inputs["input_mask"],
             token_type_ids=inputs["input_type_ids"])
  hub_out = exported.layer(inputs, training=False)
  model_out = exported.core_model(inputs, training=False)
  reference = tf1_reference.reference_forward(
      exported.files.variables, CONFIG, **raw)
  assert set(hub_out) == set(encoder_model.ENCODER_OUTPUTS)
  width = CONFIG["hidden_size"]
  assert hub_out["pooled_output"].shape == (batch, width)
  assert hub_out["sequence_output"].shape == (batch, seq, width)
  assert len(hub_out["encoder_outputs"]) == CONFIG["num_hidden_layers"]
  np.testing.assert_array_equal(hub_out["default"], hub_out["pooled_output"])
  np.testing.assert_array_equal(hub_out["encoder_outputs"][-1],
                                hub_out["sequence_output"])
  for name in ("pooled_output", "sequence_output"):
    assert relative_error(hub_out[name], model_out[name]) <= TOLERANCE
    assert relative_error(hub_out[name], reference[name]) <= TOLERANCE
  for got, want in zip(hub_out["encoder_outputs"],
                       reference["encoder_outputs"]):
    assert relative_error(got, want) <= TOLERANCE


def test_mlm_equals_model_and_reference_with_same_top_k(exported):
  raw, inputs = encoder_inputs()
  inputs["masked_lm_positions"] = raw["masked_lm_positions"]
  loaded = exported.layer.resolved_object
  hub_out = loaded.mlm(inputs, training=False)
  model_out = exported.core_model.mlm(inputs, training=False)
  reference = tf1_reference.reference_forward(
      exported.files.variables, CONFIG, **raw)
  assert set(hub_out) == set(encoder_model.MLM_OUTPUTS)
  assert hub_out["mlm_logits"].shape == (3, 4, CONFIG["vocab_size"])
  for name in ("mlm_logits", "pooled_output", "sequence_output"):
    assert relative_error(hub_out[name], model_out[name]) <= TOLERANCE
  assert relative_error(hub_out["mlm_logits"],
                        reference["mlm_logits"]) <= TOLERANCE
  top_k = lambda logits: np.argsort(-np.asarray(logits), axis=-1)[..., :5]
  np.testing.assert_array_equal(top_k(hub_out["mlm_logits"]),
                                top_k(reference["mlm_logits"]))


def test_weights_equal_and_variable_counts_pinned(exported):
  layer, core = exported.layer, exported.core_model
  assert len(layer.trainable_weights) == NUM_ENCODER_TRAINABLE
  assert len(layer.weights) == NUM_ENCODER_VARIABLES
  assert len(core.trainable_weights) == NUM_ENCODER_TRAINABLE
  # The in-memory export model gets `do_lower_case` only when saved.
  assert len(core.weights) == NUM_ENCODER_VARIABLES - 1
  loaded = exported.layer.resolved_object
  assert len(loaded.mlm.variables) == NUM_MLM_VARIABLES
  # `.mlm` shares the encoder's variables: fine-tuning one changes the other.
  assert {v.ref() for v in loaded.trainable_variables} <= {
      v.ref() for v in loaded.mlm.variables}
  for want, got in zip(core.trainable_weights, layer.trainable_weights):
    np.testing.assert_array_equal(want.numpy(), got.numpy())


def test_gradients_reach_every_encoder_variable(exported):
  _, inputs = encoder_inputs()
  layer = exported.layer
  with tf.GradientTape() as tape:
    out = layer(inputs, training=True)
    loss = tf.reduce_sum(out["pooled_output"] ** 2) + tf.reduce_sum(
        out["sequence_output"] ** 2)
  grads = tape.gradient(loss, layer.trainable_weights)
  missing = [v.name for v, g in zip(layer.trainable_weights, grads)
             if g is None or not np.any(tf.convert_to_tensor(g).numpy())]
  assert not missing

  mlm = hub.KerasLayer(layer.resolved_object.mlm, trainable=True)
  raw, inputs = encoder_inputs()
  inputs["masked_lm_positions"] = raw["masked_lm_positions"]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(mlm(inputs, training=True)["mlm_logits"] ** 2)
  grads = tape.gradient(loss, mlm.trainable_weights)
  assert len(grads) == NUM_MLM_VARIABLES
  assert all(g is not None for g in grads)


def test_dropout_only_in_training(exported):
  _, inputs = encoder_inputs(batch=1)

  def spread(training, runs=8):
    outs = np.stack([exported.layer(inputs, training=training)["pooled_output"]
                     for _ in range(runs)])
    return float(np.mean(np.std(outs, axis=0)))

  assert spread(training=False) < 1e-6
  assert spread(training=True) > 1e-3


def test_no_lambda_layers(exported):
  assert not find_lambda_layers(exported.core_model)
  assert not find_lambda_layers(exported.core_model.mlm)


def test_vocab_asset_do_lower_case_and_no_source_path(exported):
  loaded = exported.layer.resolved_object
  assert bool(loaded.do_lower_case.numpy())
  asset = loaded.vocab_file.asset_path.numpy().decode()
  assert asset.startswith(exported.encoder_dir)
  with open(asset, encoding="utf-8") as f:
    assert f.read().split("\n")[:-1] == exported.vocab
  source_dir = os.path.dirname(exported.files.vocab_file).encode()
  for part in ("encoder", "preprocessor"):
    with open(os.path.join(exported.path, part, "saved_model.pb"), "rb") as f:
      assert source_dir not in f.read()


def test_config_asset(exported):
  """The config rides along: the model rebuilds from the SavedModel alone."""
  loaded = exported.layer.resolved_object
  path = loaded.bert_config_file.asset_path.numpy().decode()
  assert path == os.path.join(exported.encoder_dir, "assets",
                              encoder_savedmodel.CONFIG_ASSET)
  assert MobileBertConfig.from_json_file(path) == exported.config
  assert encoder_savedmodel.read_config(exported.encoder_dir) == (
      exported.config)


def test_serving_signatures(exported):
  _, inputs = encoder_inputs()
  loaded = exported.layer.resolved_object
  assert {"serving_default", "mlm"} <= set(loaded.signatures)
  tensors = {k: tf.constant(v) for k, v in inputs.items()}
  served = loaded.signatures["serving_default"](**tensors)
  expected = exported.core_model(inputs, training=False)
  assert sorted(served) == sorted(
      ["default", "pooled_output", "sequence_output", "encoder_outputs_0",
       "encoder_outputs_1"])
  for name in ("pooled_output", "sequence_output"):
    assert relative_error(served[name], expected[name]) <= TOLERANCE
  positions = tf.constant([[1, 2]] * 3)
  served_mlm = loaded.signatures["mlm"](masked_lm_positions=positions,
                                        **tensors)
  expected_mlm = exported.core_model.mlm(
      dict(inputs, masked_lm_positions=positions), training=False)
  assert relative_error(served_mlm["mlm_logits"],
                        expected_mlm["mlm_logits"]) <= TOLERANCE


# === Preprocessor -> encoder ===


def test_preprocessor_feeds_encoder(exported):
  preprocessor = hub.KerasLayer(exported.preprocessor)
  sentences = tf.constant(["Return the sum of the list.", "hello world",
                           "x " * 40])
  inputs = preprocessor(sentences)
  assert inputs["input_word_ids"].shape == (3, SEQ_LENGTH)
  assert inputs["input_word_ids"][0, 0] == SPECIAL.index("[CLS]")
  hub_out = exported.layer(inputs)
  model_out = exported.core_model(inputs)
  assert relative_error(hub_out["sequence_output"],
                        model_out["sequence_output"]) <= TOLERANCE
  special = exported.preprocessor.tokenize.get_special_tokens_dict()
  assert int(special["vocab_size"]) == CONFIG["vocab_size"]
  assert int(special["mask_id"]) == SPECIAL.index("[MASK]")


def test_mask_inputs_and_top_k_ids_with_the_exported_preprocessor(exported):
  """What the verification probes `.mlm` with (`mobilebert_tf.fill_mask`)."""
  masked = fill_mask.mask_inputs(
      ["Return the [MASK] of the list.", "[MASK] a [MASK]"],
      exported.preprocessor, seq_length=12)
  ids = masked.inputs["input_word_ids"]
  vocab = exported.vocab
  assert [vocab[i] for i in ids[0]] == [
      "[CLS]", "return", "the", "[MASK]", "of", "the", "list", ".", "[SEP]",
      "[PAD]", "[PAD]", "[PAD]"]
  np.testing.assert_array_equal(masked.inputs["input_mask"][1],
                                [1] * 5 + [0] * 7)
  assert masked.positions == [[3], [1, 3]]
  np.testing.assert_array_equal(masked.inputs["masked_lm_positions"],
                                [[3, 3], [1, 3]])
  logits = np.zeros((2, 2, len(vocab)))
  logits[..., 7] = 1.0
  logits[1, 1, 9] = 2.0
  assert fill_mask.top_k_ids(logits, masked.positions, k=2) == [
      [[7, 0]], [[7, 0], [9, 7]]]
  with pytest.raises(ValueError, match="at most seq_length=4 fit"):
    fill_mask.mask_inputs(["Return the [MASK]."], exported.preprocessor,
                          seq_length=4)


# === Rebuilding from the SavedModel ===


def test_rebuild_restores_every_variable_by_object_graph(exported):
  rebuilt = rebuild.rebuild_export_model(exported.encoder_dir)
  assert rebuilt.config == exported.config
  want = exported.pretrainer.weights
  got = rebuilt.pretrainer.weights
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert bool(rebuilt.export_model.do_lower_case.numpy())
  raw, inputs = encoder_inputs()
  inputs["masked_lm_positions"] = raw["masked_lm_positions"]
  hub_mlm = exported.layer.resolved_object.mlm(inputs, training=False)
  rebuilt_mlm = rebuilt.export_model.mlm(inputs, training=False)
  for name in ("mlm_logits", "sequence_output", "pooled_output"):
    assert relative_error(rebuilt_mlm[name], hub_mlm[name]) <= TOLERANCE


def _copy_encoder(exported, tmp_path, config_change=None, drop_config=False):
  copy = str(tmp_path / "encoder")
  shutil.copytree(exported.encoder_dir, copy)
  path = os.path.join(copy, "assets", encoder_savedmodel.CONFIG_ASSET)
  if drop_config:
    os.remove(path)
  if config_change:
    with open(path, "w") as f:
      json.dump(dict(CONFIG, **config_change), f)
  return copy


@pytest.mark.parametrize("change, message", [
    (dict(drop_config=True), "has no config asset .* Re-export"),
    (dict(config_change=dict(num_hidden_layers=1)),
     "its variables do not match the model rebuilt from its config asset "
     ".* Re-export"),
    (dict(config_change=dict(intermediate_size=20)),
     "its variables do not match the model rebuilt from its config asset"),
], ids=["no_config_asset", "fewer_blocks", "other_shapes"])
def test_rebuild_refuses_a_savedmodel_that_does_not_fit(exported, tmp_path,
                                                        change, message):
  copy = _copy_encoder(exported, tmp_path, **change)
  with pytest.raises(rebuild.RebuildError, match=message):
    rebuild.rebuild_export_model(copy)


# === Fine-tuning ===


def test_keras_fit_lowers_loss(exported):
  """TF1 checkpoint -> converter -> exporter -> hub.KerasLayer -> fit."""
  tf_keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  n, seq = 16, 6  # One batch, fitted over 12 steps.
  ids = rng.integers(5, CONFIG["vocab_size"], size=(n, seq)).astype(np.int32)
  labels = (ids[:, 1] % 2).astype(np.float32)  # Parity of the first word.
  inputs = {name: tf_keras.Input(shape=(seq,), dtype=tf.int32, name=name)
            for name in ENCODER_INPUTS}
  encoder = hub.KerasLayer(exported.encoder_dir, trainable=True)
  pooled = encoder(inputs)["pooled_output"]
  logits = tf_keras.layers.Dense(1)(pooled)
  model = tf_keras.Model(inputs, logits)
  # Eagerly: tracing a train step around the restored functions costs more
  # than these few steps.
  model.compile(optimizer=tf_keras.optimizers.Adam(3e-3),
                loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
                run_eagerly=True)
  data = dict(input_word_ids=ids, input_mask=np.ones_like(ids),
              input_type_ids=np.zeros_like(ids))
  before = model.evaluate(data, labels, verbose=0)
  model.fit(data, labels, epochs=12, batch_size=n, verbose=0)
  after = model.evaluate(data, labels, verbose=0)
  assert after < 0.5 * before  # Measured: 0.77 -> 0.07.
  # The encoder itself was fine-tuned, not just the new head.
  changed = [not np.array_equal(a.numpy(), b.numpy()) for a, b in
             zip(encoder.trainable_weights,
                 exported.core_model.trainable_weights)]
  assert sum(changed) > len(changed) // 2


# === Inputs ===


def test_case_warning():
  uncased = make_vocab(CONFIG["vocab_size"])
  cased = uncased + [w.capitalize() for w in _WORDS.split() if len(w) > 1]
  assert pipeline.case_warning(uncased, do_lower_case=True) is None
  assert "an uncased model?" in pipeline.case_warning(uncased, False)
  assert pipeline.case_warning(cased, do_lower_case=False) is None
  assert "a cased model?" in pipeline.case_warning(cased, True)


# === CLI ===


def test_help_subprocess():
  result = subprocess.run(
      [sys.executable, "-m", "export.to_savedmodel", "--help"],
      capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0
  for flag in ("--bert_config_file", "--model_checkpoint_path",
               "--vocab_file", "--do_lower_case", "--export_path",
               "--seq_length", "--overwrite"):
    assert flag in result.stdout


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
  """Model files for the bad-input cases (no export needed)."""
  root = tmp_path_factory.mktemp("bad")
  files = write_model_files(str(root / "ok"))
  other = write_model_files(
      str(root / "other"), config=dict(CONFIG, num_hidden_layers=3))
  small_vocab = write_lines(root / "small_vocab.txt", make_vocab(50))
  no_specials = write_lines(
      root / "no_specials.txt",
      [t for t in make_vocab(CONFIG["vocab_size"]) if t != "[MASK]"] + ["zz"])
  tf2 = tf.train.Checkpoint(**build_pretrainer(MobileBertConfig.from_dict(
      dict(CONFIG, num_hidden_layers=3))).checkpoint_items).write(
          str(root / "tf2_other" / "ckpt"))
  existing = root / "existing"
  existing.mkdir()
  return types.SimpleNamespace(
      root=root, files=files, other=other, small_vocab=small_vocab,
      no_specials=no_specials, tf2_other=tf2, existing=str(existing))


BAD_CASES = {
    # name: (change to the arguments, words the one-line message must have)
    "missing_config": (dict(config_file="/nonexistent/bert_config.json"),
                       "config file not found"),
    "config_not_json": (dict(config_file="vocab"), "not valid JSON"),
    "config_preset_does_not_fit": (
        dict(config_file="uncased_L-24_H-128_B-512_A-4_F-4_OPT"),
        "has 72 tokens but the config's vocab_size is 30522"),
    "missing_checkpoint": (dict(checkpoint="/nonexistent/model.ckpt"),
                           "not found"),
    "missing_vocab": (dict(vocab_file="/nonexistent/vocab.txt"),
                      "does not exist"),
    "vocab_size_differs": (dict(vocab_file="small_vocab"),
                           "has 50 tokens but the config's vocab_size is 72"),
    "vocab_without_special_tokens": (dict(vocab_file="no_specials"),
                                     "missing [MASK]"),
    "tf1_checkpoint_does_not_fit": (dict(checkpoint="other"),
                                    "no mapping: bert/encoder/layer_2"),
    "tf2_checkpoint_does_not_fit": (dict(checkpoint="tf2_other"),
                                    "does not fit the config"),
    "export_path_exists": (dict(export_path="existing"), "already exists"),
    "seq_length_too_long": (dict(extra=["--seq_length=65"]),
                            "max_position_embeddings=64"),
    "missing_flag": (dict(drop="--export_path"), "--export_path is required"),
    "unknown_flag": (dict(extra=["--frobnicate=1"]), "frobnicate"),
    "positional_argument": (dict(extra=["stray"]), "unexpected arguments"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_cli_bad_input_exits_2_with_one_line(bad_inputs, case, capsys):
  change, expected = BAD_CASES[case]
  b = bad_inputs
  named = dict(vocab=b.files.vocab_file, small_vocab=b.small_vocab,
               no_specials=b.no_specials, other=b.other.checkpoint,
               tf2_other=b.tf2_other, existing=b.existing)
  files = types.SimpleNamespace(
      config_file=named.get(change.get("config_file"),
                            change.get("config_file", b.files.config_file)),
      checkpoint=named.get(change.get("checkpoint"),
                           change.get("checkpoint", b.files.checkpoint)),
      vocab_file=named.get(change.get("vocab_file"),
                           change.get("vocab_file", b.files.vocab_file)))
  export_path = named.get(change.get("export_path"),
                          str(b.root / f"out_{case}"))
  args = cli_args(files, export_path, *change.get("extra", []))
  if "drop" in change:
    args = [a for a in args if not a.startswith(change["drop"])]
  before = sorted(os.listdir(b.root))
  assert to_savedmodel.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1, err
  assert expected in err
  assert "Traceback" not in err
  assert sorted(os.listdir(b.root)) == before  # Nothing written.


def test_demo_refuses_missing_files_and_foreign_directories(
    tmp_path, monkeypatch, capsys):
  """With no flags: the bundled demo files, and only a demo export replaced."""
  demo = tmp_path / "demo"
  monkeypatch.setattr(to_savedmodel, "DEMO_DIR", str(demo))
  monkeypatch.chdir(tmp_path)
  assert to_savedmodel.main(["to_savedmodel"]) == 2  # Not there yet.
  assert "demonstration model is missing" in capsys.readouterr().err

  write_model_files(str(demo))
  foreign = tmp_path / "build" / "demo_export"
  (foreign / "encoder").mkdir(parents=True)
  (foreign / "preprocessor").mkdir()
  (foreign / "mine.txt").write_text("keep")
  assert to_savedmodel.main(["to_savedmodel"]) == 2
  assert "not an earlier demo export" in capsys.readouterr().err
  assert (foreign / "mine.txt").read_text() == "keep"


def test_demo_prints_the_models_predictions(exported):
  """The demonstration's [MASK] lines are the model's top 5.

  The reference is the in-memory model restored separately from the TF1
  checkpoint, through `fill_mask` with the exported preprocessor.
  """
  out = exported.stdout
  assert out.startswith("Demonstration: exporting the bundled MobileBERT")
  assert f"Exported to {exported.path} in " in out
  assert "(checkpoint: tf1)" in out
  assert "hub.KerasLayer" in out
  masked = [s for s in verify.PROBE_SENTENCES if fill_mask.MASK_TEXT in s]
  expected = fill_mask.fill_mask(masked, exported.preprocessor,
                                 exported.pretrainer, vocab=exported.vocab)
  lines = out.splitlines()
  for sentence, per_mask in zip(masked, expected):
    at = lines.index(f"  {sentence}")
    for j, best in enumerate(per_mask):
      tokens = ", ".join(entry["token"] for entry in best)
      assert lines[at + 1 + j] == f"      -> {tokens}"


def test_bundled_demo_model_fits_the_exporter(tmp_path):
  """The real demo files (`make demo`) pass every input check and restore."""
  d = to_savedmodel.DEMO_DIR
  config = MobileBertConfig.from_json_file(
      os.path.join(d, to_savedmodel.DEMO_CONFIG))
  prepared = pipeline.prepare_export(
      config, os.path.join(d, to_savedmodel.DEMO_CHECKPOINT),
      os.path.join(d, to_savedmodel.DEMO_VOCAB),
      to_savedmodel.DEMO_DO_LOWER_CASE, str(tmp_path / "demo_export"),
      seq_length=min(128, config.max_position_embeddings))
  assert prepared.checkpoint_format == "tf1"
  assert not prepared.warnings  # do_lower_case fits the vocabulary.


def test_verification_failure_leaves_nothing(tmp_path, monkeypatch, capsys):
  """A SavedModel that fails verification is not published (exit 1)."""
  files = write_model_files(str(tmp_path / "source"))

  def failing_verify(*args, **kwargs):
    raise verify.VerificationError("mlm_logits relative error 1.00e+00")

  # Stand-ins for the slow writers: this test is about the cleanup.
  monkeypatch.setattr(encoder_savedmodel, "export_encoder",
                      lambda *a, **k: os.makedirs(a[3]))
  monkeypatch.setattr(preprocessor_savedmodel, "export_preprocessor",
                      lambda *a, **k: os.makedirs(a[2]))
  monkeypatch.setattr(verify, "verify_export", failing_verify)
  out = tmp_path / "out"
  out.mkdir()
  assert to_savedmodel.main(cli_args(files, str(out / "hub"))) == 1
  err = capsys.readouterr().err.strip()
  assert "verification failed" in err and len(err.splitlines()) == 1
  assert "mlm_logits relative error 1.00e+00" in err
  assert not os.listdir(out)


# === Ill-conditioned model ===


# 3 NoNorm blocks wide enough for N(0, 0.2) weights to blow up.
ILL_CONDITIONED = dict(CONFIG, num_hidden_layers=3, hidden_size=96,
                       intra_bottleneck_size=32, intermediate_size=96)


def _ill_conditioned_checkpoint(directory, config, seed=0):
  """An original-format TF1 checkpoint with N(0, 0.2) weights.

  Every kernel, bias and embedding table ~ N(0, 0.2); the NoNorms as a fresh
  model has them (gamma 1, beta 0). Nothing rescales the activations: they
  reach ~1e4 and the attention logits ~1e6 (measured in the test), where
  float32 rounding differences between two traces are large.
  """
  rng = np.random.default_rng(seed)
  table = name_map.tf1_to_keras(config, with_nsp=True)
  variables = {}
  for name, entry in table.items():
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "gamma":
      value = np.ones(entry.tf1_shape)
    elif leaf == "beta":
      value = np.zeros(entry.tf1_shape)
    else:
      value = rng.normal(0.0, 0.2, entry.tf1_shape)
    variables[name] = value.astype(np.float32)
  return tf1_io.write_tf1_checkpoint(
      variables, os.path.join(directory, "model.ckpt"))


@pytest.mark.slow
def test_ill_conditioned_export_passes_its_own_verification(tmp_path,
                                                            capsys):
  """3 NoNorm blocks with N(0, 0.2) weights; the probe rows have padding.

  The export traces the model as built (standard attention layout), as the
  in-memory model it is compared with does, so their difference is float32
  rounding of one graph: the verification's 1e-5 holds, not loosened.
  """
  cfg = ILL_CONDITIONED
  config = MobileBertConfig.from_dict(cfg)
  files = write_model_files(str(tmp_path / "source"), config=cfg)
  prefix = _ill_conditioned_checkpoint(str(tmp_path / "ill"), config)
  files.checkpoint = prefix
  export_path = tmp_path / "hub"
  export_path.mkdir()
  (export_path / "old.txt").write_text("replaced")  # --overwrite
  code = to_savedmodel.main(cli_args(files, str(export_path),
                                     "--seq_length=16", "--overwrite"))
  captured = capsys.readouterr()
  assert code == 0, captured.err
  assert sorted(os.listdir(export_path)) == ["encoder", "preprocessor"]
  worst = re.search(r"max relative error (\S+) \(tolerance 1e-05\)",
                    captured.out)
  assert worst and float(worst.group(1)) <= TOLERANCE
  print(f"ill-conditioned export: {worst.group(0)}")

  # The model is as ill-conditioned as intended, on padded rows.
  pretrainer = build_pretrainer(config, return_attention_logits=True)
  restore.load_checkpoint(pretrainer, config, prefix)
  preprocessor = hub.load(str(export_path / "preprocessor"))
  inputs = {k: v.numpy() for k, v in preprocessor(
      tf.constant(list(verify.PROBE_SENTENCES))).items()}
  assert (inputs["input_mask"] == 0).any(axis=1).sum() >= 3  # padded rows
  out = pretrainer.encoder_network(inputs, training=False)
  activation = float(np.max(np.abs(out["sequence_output"])))
  real = inputs["input_mask"].astype(bool)
  pairs = real[:, None, :, None] & real[:, None, None, :]  # query, key real
  logits = float(max(np.max(np.abs(np.asarray(x)[np.broadcast_to(
      pairs, x.shape)])) for x in out["attention_logits"]))
  print(f"ill-conditioned export: max |activation| {activation:.2e}, "
        f"max |attention logit| {logits:.2e}")
  assert activation > 1e3 and logits > 1e5
  # An independent check of the published export on those rows.
  layer = hub.KerasLayer(str(export_path / "encoder"))
  got = layer(inputs, training=False)["sequence_output"]
  assert relative_error(got, out["sequence_output"]) <= TOLERANCE
