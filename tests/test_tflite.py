"""TFLite export (`export.to_tflite`): signature, agreement, CLI errors.

One tiny export per module (`exported`): a random tiny MobileBERT with a
vocabulary learned from real text, written as encoder + preprocessor
SavedModels as `export.to_savedmodel` does. Every quantization is converted
(int8 through the CLI in-process) and checked independently of the
converter's own verification: the documented signature, and agreement with
the SavedModel within `tflite_verify.THRESHOLDS` on texts the converter did
not probe. Full int8 does not reach its bar yet: a strict xfail with the
measured numbers.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# pylint: disable=g-import-not-at-top
import json
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (ops of the preprocessor SavedModel)
from ai_edge_litert.interpreter import Interpreter

from export import encoder_savedmodel
from export import preprocessor_savedmodel
from export import tflite_convert
from export import tflite_export
from export import tflite_verify
from export import to_tflite
from mobilebert_tf import MobileBertConfig
from mobilebert_tf import build_encoder
from mobilebert_tf import build_pretrainer
from mobilebert_tf import numerics
from mobilebert_tf import vocab as vocab_lib
from mobilebert_tf.encoder import ENCODER_INPUTS
from tests.text_corpus import stdlib_docstring_lines

SEQ_LENGTH = 16
TINY = dict(
    hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=24, intra_bottleneck_size=16,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm", hidden_act="relu",
    max_position_embeddings=32, type_vocab_size=2, classifier_activation=False)
TEXTS = ("Return the number of items in the list.",
         "Open the file and return a stream.",
         "The default is None.")


def _randomize(model, seed=0):
  """Weights of unit-scale activations (the initializer's are near zero)."""
  rng = np.random.default_rng(seed)
  for v in model.weights:
    fan_in = v.shape[0] if len(v.shape) > 1 else 1
    value = rng.normal(0, 1 / np.sqrt(fan_in), v.shape)
    if "gamma" in v.name:
      value += 1.0
    v.assign(value.astype(np.float32))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("tflite")
  lines = stdlib_docstring_lines(max_lines=300)
  tokens = vocab_lib.learn_wordpiece_vocab(lines, 256, do_lower_case=True)
  vocab_file = vocab_lib.write_vocab_file(tokens, str(root / "vocab.txt"))
  config = MobileBertConfig.from_dict(dict(TINY, vocab_size=len(tokens)))
  pretrainer = build_pretrainer(config)
  _randomize(pretrainer)
  export_dir = root / "export"
  os.makedirs(export_dir)
  encoder_savedmodel.export_encoder(pretrainer, vocab_file, True,
                                    str(export_dir / "encoder"))
  preprocessor_savedmodel.export_preprocessor(
      vocab_file, True, str(export_dir / "preprocessor"),
      seq_length=SEQ_LENGTH)
  text_file = root / "text.txt"
  text_file.write_text("\n".join(lines[:120]), encoding="utf-8")
  return types.SimpleNamespace(
      root=root, encoder_dir=str(export_dir / "encoder"),
      preprocessor_dir=str(export_dir / "preprocessor"),
      text_file=str(text_file), config=config, lines=lines)


def _cli(exported, output, *extra):
  return ["to_tflite", f"--saved_model_dir={exported.encoder_dir}",
          f"--output={output}", f"--seq_length={SEQ_LENGTH}", *extra]


@pytest.fixture(scope="module")
def source(exported):
  return tflite_convert.load_encoder(exported.encoder_dir)


@pytest.fixture(scope="module")
def preprocessor(exported):
  return tf.saved_model.load(exported.preprocessor_dir)


@pytest.fixture(scope="module")
def converted(exported, source, preprocessor):
  """{quantization: path}: int8 through the CLI, the others by the API."""
  paths = {q: str(exported.root / f"model_{q}.tflite")
           for q in tflite_convert.QUANTIZATIONS}
  for quantization in ("none", "dynamic", "float16"):
    tflite_export.export_tflite(
        exported.encoder_dir, paths[quantization], quantization,
        seq_length=SEQ_LENGTH, source=source, preprocessor=preprocessor)
  # Any agreement accepted here: whether int8 reaches its bar is
  # `test_agreement`'s question (it does not, yet).
  assert to_tflite.main(_cli(
      exported, paths["int8"], "--quantization=int8",
      f"--representative_text={exported.text_file}", "--min_cosine=-1",
      "--max_relative_error=inf")) == 0
  return paths


def _inputs_from_texts(preprocessor, texts):
  return tflite_convert.text_inputs(preprocessor, texts, SEQ_LENGTH)


# The bar is the (as for dynamic); measured on texts the converter
# did not probe.
INT8_XFAIL = pytest.mark.xfail(
    strict=True,
    reason="full int8 misses the bar (cosine 0.999, relative error 5e-2): "
    "measured cosine 0.9980 / relative error 6.7e-2 on this tiny random "
    "model (0.969 / 0.34 while the calibration fed the inputs by position), "
    "cosine 0.90 / relative error 0.48 on the trained demo model; needs "
    "quantization-aware training")


@pytest.mark.parametrize("quantization", tflite_convert.QUANTIZATIONS)
def test_signature(exported, converted, quantization):
  interpreter = Interpreter(model_path=converted[quantization])
  signatures = interpreter.get_signature_list()
  assert set(signatures) == {"serving_default"}
  assert sorted(signatures["serving_default"]["inputs"]) == sorted(
      ENCODER_INPUTS)
  assert sorted(signatures["serving_default"]["outputs"]) == sorted(
      tflite_convert.TFLITE_OUTPUTS)
  runner = interpreter.get_signature_runner("serving_default")
  for name, detail in runner.get_input_details().items():
    assert detail["dtype"] == np.int32, name
    assert list(detail["shape"]) == [1, SEQ_LENGTH], name
  outputs = runner.get_output_details()
  hidden = exported.config.hidden_size
  assert list(outputs["sequence_output"]["shape"]) == [1, SEQ_LENGTH, hidden]
  assert list(outputs["pooled_output"]["shape"]) == [1, hidden]
  assert outputs["sequence_output"]["dtype"] == np.float32


@pytest.mark.parametrize("quantization", [
    "none", "dynamic", "float16", pytest.param("int8", marks=INT8_XFAIL)])
def test_agreement(exported, source, preprocessor, converted, quantization):
  # Texts of the corpus that neither calibration nor the probe used.
  inputs = _inputs_from_texts(preprocessor, exported.lines[200:204])
  batches = [{k: v[i:i + 1] for k, v in inputs.items()} for i in range(4)]
  with open(converted[quantization], "rb") as f:
    model = f.read()
  result = tflite_verify.agreement(
      tflite_verify.run_tflite(model, batches),
      tflite_verify.savedmodel_outputs(source.serving, batches),
      inputs["input_mask"], "text")
  print(f"{quantization}: cosine {result.cosine:.6f}, relative error "
        f"{result.relative_error:.3e}")
  threshold = tflite_verify.THRESHOLDS[quantization]
  assert result.cosine >= threshold.min_cosine
  assert result.relative_error <= threshold.max_relative_error
  if quantization == "none":
    assert result.relative_error < 1e-5


def test_batch_size_and_report(exported, source, preprocessor):
  output = str(exported.root / "batch3.tflite")
  report = tflite_export.export_tflite(
      exported.encoder_dir, output, "dynamic", seq_length=SEQ_LENGTH,
      batch_size=3, source=source, preprocessor=preprocessor)
  assert report.agreement.probe == "text"
  assert report.num_ops > 0 and report.size_bytes == os.path.getsize(output)
  printed = report.format()
  assert "agreement with the SavedModel on 9 probe sequences (text)" in printed
  assert "[3, 16]" in printed
  runner = Interpreter(model_path=output).get_signature_runner()
  outputs = runner(**_inputs_from_texts(preprocessor, list(TEXTS)))
  assert outputs["sequence_output"].shape == (3, SEQ_LENGTH, 32)


def test_random_id_probe_without_preprocessor(exported, source, tmp_path):
  """An encoder without a preprocessor beside it is probed with random ids."""
  lonely = str(tmp_path / "lonely" / "encoder")
  shutil.copytree(exported.encoder_dir, lonely)
  report = tflite_export.export_tflite(
      lonely, str(tmp_path / "lonely.tflite"), seq_length=SEQ_LENGTH)
  assert report.agreement.probe == "random ids"
  assert report.agreement.relative_error < 1e-5


def _foreign_encoder(source, directory):
  """An encoder SavedModel of the same signature, not written by us."""
  module = tf.Module()
  module.encoder = source.loaded
  spec = tf.TensorSpec([None, None], tf.int32)
  module.serve = tf.function(
      lambda input_word_ids, input_mask, input_type_ids: {
          k: v for k, v in source.serving(
              input_word_ids=input_word_ids, input_mask=input_mask,
              input_type_ids=input_type_ids).items()
          if k in tflite_convert.TFLITE_OUTPUTS},
      input_signature=[spec, spec, spec])
  tf.saved_model.save(module, directory,
                      signatures={"serving_default": module.serve})
  return directory


def test_savedmodels_that_cannot_be_rebuilt_are_refused(exported, source,
                                                        tmp_path, capsys):
  """No silent fallback: no config asset, or another object graph, fail."""
  foreign = _foreign_encoder(source, str(tmp_path / "foreign"))
  with pytest.raises(tflite_convert.ConversionError,
                     match="its variables do not match the model rebuilt "
                     "from its config asset .* Re-export"):
    tflite_convert.load_encoder(foreign)

  old_export = str(tmp_path / "old" / "encoder")  # As before the asset.
  shutil.copytree(exported.encoder_dir, old_export)
  os.remove(os.path.join(old_export, "assets", "bert_config.json"))
  with pytest.raises(tflite_convert.ConversionError,
                     match="has no config asset .* Re-export"):
    tflite_convert.load_encoder(old_export)

  altered = str(tmp_path / "altered" / "encoder")
  shutil.copytree(exported.encoder_dir, altered)
  asset = os.path.join(altered, "assets", "bert_config.json")
  with open(asset) as f:
    values = json.load(f)
  with open(asset, "w") as f:
    json.dump(dict(values, num_hidden_layers=1), f)
  output = str(tmp_path / "altered.tflite")
  assert to_tflite.main(["to_tflite", f"--saved_model_dir={altered}",
                         f"--output={output}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  assert "do not match the model rebuilt from its config asset" in err[0]
  assert "Re-export" in err[0]
  assert not os.path.exists(output)


def test_verification_failure_writes_nothing(exported, capsys):
  output = str(exported.root / "strict.tflite")
  code = to_tflite.main(_cli(exported, output, "--quantization=dynamic",
                             "--max_relative_error=1e-9"))
  assert code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "verification failed" in err[0]
  assert not os.path.exists(output)
  assert not [f for f in os.listdir(exported.root) if f.startswith(".")]


@pytest.mark.parametrize("case", [
    "not_an_encoder", "no_savedmodel", "missing_text", "int8_without_text",
    "bad_quantization", "output_exists", "seq_too_long", "unknown_flag",
    "missing_output", "unknown_output"])
def test_bad_input_exits_2_with_one_line(exported, converted, case, capsys):
  fresh = str(exported.root / f"bad_{case}.tflite")
  argv = {
      "not_an_encoder": ["to_tflite",
                         f"--saved_model_dir={exported.preprocessor_dir}",
                         f"--output={fresh}"],
      "no_savedmodel": ["to_tflite", f"--saved_model_dir={exported.root}",
                        f"--output={fresh}"],
      "missing_text": _cli(exported, fresh, "--quantization=int8",
                           "--representative_text=/nonexistent/text.txt"),
      "int8_without_text": _cli(exported, fresh, "--quantization=int8"),
      "bad_quantization": _cli(exported, fresh, "--quantization=int4"),
      "output_exists": _cli(exported, converted["none"]),
      "seq_too_long": ["to_tflite", f"--saved_model_dir={exported.encoder_dir}",
                       f"--output={fresh}", "--seq_length=33"],
      "unknown_flag": _cli(exported, fresh, "--quantisation=dynamic"),
      "missing_output": ["to_tflite",
                         f"--saved_model_dir={exported.encoder_dir}"],
      "unknown_output": _cli(exported, fresh, "--outputs=pooled,logits"),
  }[case]
  assert to_tflite.main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1, err
  assert err[0].startswith("python -m export.to_tflite: error: ")
  assert not os.path.exists(fresh)
  expected = {
      "not_an_encoder": "is not a text encoder SavedModel",
      "no_savedmodel": "No SavedModel",
      "missing_text": "file not found",
      "int8_without_text": "needs --representative_text",
      "bad_quantization": "int4",
      "output_exists": "already exists",
      "seq_too_long": "max_position_embeddings (32)",
      "unknown_flag": "quantisation",
      "missing_output": "--output is required",
      "unknown_output": "--outputs must be some of sequence_output, "
                        "pooled_output. Received: pooled, logits",
  }[case]
  assert expected in err[0]


@pytest.mark.parametrize("overrides", [
    {}, dict(use_bottleneck_attention=True),
    dict(key_query_shared_bottleneck=False),
    dict(use_bottleneck=False, num_attention_heads=2),
], ids=["kq_shared", "bottleneck_attention", "plain_bottleneck",
        "no_bottleneck"])
def test_attention_layouts_agree(overrides):
  """The layout TFLite converts (standard), XLA's and heads-first agree."""
  config = MobileBertConfig.from_dict(dict(TINY, vocab_size=50, **overrides))
  standard = build_encoder(config, return_attention_scores=True)
  _randomize(standard, seed=1)
  heads_first = build_encoder(config, return_attention_scores=True,
                              attention_layout="heads_first")
  heads_first.set_weights(standard.get_weights())
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 50, (2, 10)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 6:] = 0
  inputs = dict(input_word_ids=ids * mask, input_mask=mask,
                input_type_ids=np.zeros_like(ids))
  want = standard(inputs)
  traced = tf.function(lambda x: standard(x))(inputs)
  xla = tf.function(lambda x: standard(x), jit_compile=True)(inputs)
  other = tf.function(lambda x: heads_first(x))(inputs)
  for got in (traced, xla, other):
    for key in ("sequence_output", "attention_scores"):
      a = np.asarray(tf.nest.flatten(got[key]))
      b = np.asarray(tf.nest.flatten(want[key]))
      assert a.shape == b.shape
      error = numerics.relative_error(a, b)
      # The softmax amplifies the logits' rounding (large with these weights).
      assert error < (1e-5 if key == "sequence_output" else 1e-4), (key, error)


class _MixInputs:
  """Weightless stand-in for a model: a sum of the three inputs."""
  weights = []

  def __call__(self, inputs, training=None):
    del training
    values = {k: tf.cast(v, tf.float32) for k, v in inputs.items()}
    return dict(mixed=values["input_mask"] * 2.0 + values["input_type_ids"] *
                3.0 + values["input_word_ids"] * 0.25)


def test_int8_calibration_feeds_each_input_by_name():
  """The representative batches reach the inputs they are named after.

  Fed as a list they went by position to the converter's own input order
  (input_word_ids, input_type_ids, input_mask): the mask was calibrated on
  the all-zero type ids, its range collapsed to [0, 0], and every key of
  the demo model's full-int8 attention ended up masked.
  """
  rng = np.random.default_rng(0)
  mask = (np.arange(SEQ_LENGTH) < 10).astype(np.int32)[None]
  batches = [dict(input_word_ids=rng.integers(1, 9, (1, SEQ_LENGTH)).astype(
      np.int32) * mask, input_mask=mask,
                  input_type_ids=np.zeros_like(mask)) for _ in range(4)]
  model = tflite_convert.convert_model(
      _MixInputs(), ["mixed"], "int8", seq_length=SEQ_LENGTH,
      representative_batches=batches)
  got = tflite_verify.run_tflite(model, batches[:1], output_names=["mixed"])
  want = _MixInputs()(batches[0])["mixed"].numpy()
  # int8 of the calibrated range [0, 2 + 8 * 0.25]: steps of 4 / 255.
  np.testing.assert_allclose(got["mixed"], want, atol=4 / 255)
