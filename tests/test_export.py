"""TF-Hub SavedModel export: round trip, contract, TF1/TF2 checkpoints, CLI.

One export per module (`exported`): a tiny MobileBERT (the OPT layout with a
pooler) filled with random values under the ORIGINAL TF1 names, written as a
TF1 checkpoint with optimizer slots, exported by the CLI (converted on the
fly), with a vocabulary built here. The source vocab file is deleted right
after the export, so every load below also proves that the SavedModels do not
need it. Outputs are compared with the in-memory model and with the NumPy
reference of the original TF1 forward pass (`tests/tf1_reference.py`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras
from official.projects.mobilebert import model_utils as tfm_model_utils

from checkpoints import convert
from export import hub_export
from export import to_savedmodel
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_pretrainer
from tests import tf1_reference
from tests.tf1_reference import relative_error

# tf-models-official 2.20.0's model_utils uses tf_keras without importing it.
tfm_model_utils.tf_keras = tf_keras

TOLERANCE = 1e-5
CONFIG = dict(tf1_reference.TEST_CONFIGS["opt_pooler"])  # vocab 72, 2 blocks
SEQ_LENGTH = 16

# Variables of the exported encoder for CONFIG, pinned: 89 trainable encoder
# weights (embedding 7, 2 blocks x 40 with 3 FFNs each, pooler 2) plus the
# non-trainable `do_lower_case`. The `.mlm` model adds the head's 6 (transform
# kernel/bias, layer norm gamma/beta, output bias, extra output weights).
# A change here means the `_auto_track_sub_layers` workaround in
# `hub_export._attach_untracked` (or the layer structure) changed.
NUM_ENCODER_TRAINABLE = 89
NUM_ENCODER_VARIABLES = 90
NUM_MLM_VARIABLES = 95

# Words for the test vocabulary; the rest of the 72 ids are "##" pieces.
_WORDS = ("the a of to and is in it for list file return value none new "
          "raise if not does exist default create hello world error name "
          "type sum , . ! ( ) b c d e f g h i j k l m n o p q r s t u v w x "
          "y z")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
  """Runs the CLI once (TF1 checkpoint, --overwrite over an old directory)."""
  root = tmp_path_factory.mktemp("export")
  files = write_model_files(str(root / "source"))
  export_path = str(root / "hub")
  os.makedirs(os.path.join(export_path, "stale"))  # Replaced: --overwrite.
  code = to_savedmodel.main(cli_args(files, export_path,
                                     f"--seq_length={SEQ_LENGTH}",
                                     "--overwrite"))
  assert code == 0
  vocab = make_vocab(CONFIG["vocab_size"])
  os.remove(files.vocab_file)  # The SavedModels must not need it.

  config = MobileBertConfig.from_dict(CONFIG)
  pretrainer = build_pretrainer(config)
  hub_export.load_checkpoint(pretrainer, config, files.checkpoint)
  preprocessor_dir = os.path.join(export_path, "preprocessor")
  return types.SimpleNamespace(
      root=str(root), files=files, path=export_path,
      preprocessor=hub.load(preprocessor_dir),
      encoder_dir=os.path.join(export_path, "encoder"),
      preprocessor_dir=preprocessor_dir,
      config=config, pretrainer=pretrainer, vocab=vocab,
      core_model=hub_export.build_export_model(pretrainer),
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
  leftovers = [n for n in os.listdir(exported.root) if n.startswith(".")]
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
  assert set(hub_out) == set(hub_export.ENCODER_OUTPUTS)
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
  assert set(hub_out) == set(hub_export.MLM_OUTPUTS)
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


def test_mask_probe_inputs_and_top_k(exported):
  mask_id = SPECIAL.index("[MASK]")
  inputs = hub_export.mask_probe_inputs(
      exported.preprocessor, ["Return the [MASK] of the list.",
                              "[MASK] a [MASK]"], 12,
      mask_id)
  ids = inputs["input_word_ids"]
  vocab = exported.vocab
  assert [vocab[i] for i in ids[0][:9]] == [
      "[CLS]", "return", "the", "[MASK]", "of", "the", "list", ".", "[SEP]"]
  np.testing.assert_array_equal(inputs["masked_lm_positions"],
                                [[3, 3], [1, 3]])
  logits = np.zeros((2, 2, len(vocab)))
  logits[..., 7] = 1.0
  tokens = hub_export.top_k_tokens(logits, inputs["masked_lm_positions"], ids,
                                   mask_id, vocab, k=1)
  assert tokens == [[[vocab[7]]], [[vocab[7]], [vocab[7]]]]


# === Fine-tuning ===


def test_keras_fit_lowers_loss(exported):
  """TF1 checkpoint -> converter -> exporter -> hub.KerasLayer -> fit."""
  tf_keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  n, seq = 16, 6  # One batch, fitted over 12 steps.
  ids = rng.integers(5, CONFIG["vocab_size"], size=(n, seq)).astype(np.int32)
  labels = (ids[:, 1] % 2).astype(np.float32)  # Parity of the first word.
  inputs = {name: tf_keras.Input(shape=(seq,), dtype=tf.int32, name=name)
            for name in hub_export.ENCODER_INPUTS}
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


# === Checkpoint loading ===


def test_load_our_tf2_checkpoint_and_directory(exported, tmp_path):
  items = exported.pretrainer.checkpoint_items
  prefix = tf.train.Checkpoint(**items).save(str(tmp_path / "ckpt"))
  config = exported.config
  for path in (prefix, str(tmp_path), prefix + ".index"):  # Or dir, file.
    fresh = build_pretrainer(config)
    assert hub_export.load_checkpoint(fresh, config, path) == "tf2"
    for a, b in zip(fresh.weights, exported.pretrainer.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_converter_checkpoint_with_nsp_head(exported, tmp_path):
  """The converter keeps the NSP head; the exporter ignores it."""
  summary = convert.convert(exported.config, exported.files.checkpoint,
                            str(tmp_path / "converted"))
  assert summary.with_nsp
  fresh = build_pretrainer(exported.config)
  assert hub_export.load_checkpoint(
      fresh, exported.config, summary.tf2_checkpoint_path) == "tf2"
  for a, b in zip(fresh.weights, exported.pretrainer.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_load_tf_models_official_checkpoint(exported, tmp_path):
  config = exported.config
  theirs = tfm_model_utils.create_mobilebert_pretrainer(
      tfm_model_utils.BertConfig.from_dict(config.to_dict()))
  prefix = tf.train.Checkpoint(**theirs.checkpoint_items).save(
      str(tmp_path / "tfm"))
  ours = build_pretrainer(config)
  assert hub_export.load_checkpoint(ours, config, prefix) == "tf2"
  raw, inputs = encoder_inputs()
  inputs["masked_lm_positions"] = raw["masked_lm_positions"]
  want = theirs(inputs)
  got = ours(inputs)
  for name in ("sequence_output", "mlm_logits"):
    assert relative_error(got[name], want[name]) <= TOLERANCE


def test_checkpoint_of_another_config_is_rejected(exported, tmp_path):
  deeper = exported.config.replace(num_hidden_layers=3)
  prefix = tf.train.Checkpoint(
      **build_pretrainer(deeper).checkpoint_items).write(str(tmp_path / "c"))
  with pytest.raises(ValueError, match="does not fit the config: .* "
                     "checkpoint variables the model does not have: "
                     "encoder/layer_with_weights-3"):
    hub_export.load_checkpoint(build_pretrainer(exported.config),
                               exported.config, prefix)
  wider = exported.config.replace(intermediate_size=20)
  with pytest.raises(ValueError, match="shape mismatches"):
    hub_export.load_checkpoint(build_pretrainer(wider), wider, prefix)


def test_not_a_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    hub_export.checkpoint_format(str(tmp_path / "nothing"))
  (tmp_path / "bad.index").write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="Cannot read checkpoint"):
    hub_export.checkpoint_format(str(tmp_path / "bad"))


def test_case_warning():
  uncased = make_vocab(CONFIG["vocab_size"])
  cased = uncased + [w.capitalize() for w in _WORDS.split() if len(w) > 1]
  assert hub_export.case_warning(uncased, do_lower_case=True) is None
  assert "an uncased model?" in hub_export.case_warning(uncased, False)
  assert hub_export.case_warning(cased, do_lower_case=False) is None
  assert "a cased model?" in hub_export.case_warning(cased, True)


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


def test_demo_default_arguments(tmp_path, monkeypatch, capsys):
  """With no flags: the bundled demo files, build/demo_export, overwrite."""
  demo = tmp_path / "demo"
  monkeypatch.setattr(to_savedmodel, "DEMO_DIR", str(demo))
  monkeypatch.chdir(tmp_path)
  assert to_savedmodel.main(["to_savedmodel"]) == 2  # Not there yet.
  assert "demonstration model is missing" in capsys.readouterr().err

  write_model_files(str(demo))
  seen = {}

  def fake_write_export(prepared, export_path, **kwargs):
    seen.update(kwargs, export_path=export_path, prepared=prepared)
    return hub_export.ExportReport(
        export_path=export_path, output_shapes={"pooled_output": (5, 32)},
        predictions=[("Return the [MASK] of the list.", [["sum", "list"]])])

  monkeypatch.setattr(hub_export, "write_export", fake_write_export)
  # An earlier demo export is replaced; anything else is refused.
  (tmp_path / "build" / "demo_export" / "encoder").mkdir(parents=True)
  (tmp_path / "build" / "demo_export" / "preprocessor").mkdir()
  assert to_savedmodel.main(["to_savedmodel"]) == 0
  out = capsys.readouterr().out
  assert seen["export_path"] == str(tmp_path / "build" / "demo_export")
  assert seen["overwrite"] and seen["prepared"].do_lower_case
  assert seen["prepared"].checkpoint_format == "tf1"
  assert seen["seq_length"] == CONFIG["max_position_embeddings"]
  assert "Return the [MASK] of the list." in out and "sum, list" in out
  assert "hub.KerasLayer" in out

  (tmp_path / "build" / "demo_export" / "mine.txt").write_text("keep")
  assert to_savedmodel.main(["to_savedmodel"]) == 2
  assert "not an earlier demo export" in capsys.readouterr().err


def test_bundled_demo_model_fits_the_exporter(tmp_path):
  """The real demo files (`make demo`) pass every input check and restore."""
  d = to_savedmodel.DEMO_DIR
  config = MobileBertConfig.from_json_file(
      os.path.join(d, to_savedmodel.DEMO_CONFIG))
  prepared = hub_export.prepare_export(
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
    raise hub_export.VerificationError("mlm_logits relative error 1.00e+00")

  # Stand-ins for the slow writers: this test is about the cleanup.
  monkeypatch.setattr(hub_export, "export_encoder",
                      lambda *a, **k: os.makedirs(a[3]))
  monkeypatch.setattr(hub_export.preprocessing, "export_preprocessor",
                      lambda *a, **k: os.makedirs(a[2]))
  monkeypatch.setattr(hub_export, "verify_export", failing_verify)
  out = tmp_path / "out"
  out.mkdir()
  assert to_savedmodel.main(cli_args(files, str(out / "hub"))) == 1
  err = capsys.readouterr().err.strip()
  assert "verification failed" in err and len(err.splitlines()) == 1
  assert not os.listdir(out)
