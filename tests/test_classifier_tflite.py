"""The fine-tuning CLI's TFLite classifier (`--tflite_file`,
`export.classifier_tflite`): what it computes, its bars, its refusals.

Accuracy against float32 on a task the model learns is the benchmark's
measurement; these tests pin the graph (the in-memory probabilities in
float32, integer ops in full int8), the report and the bars on tiny random
models.
"""

import os

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import pytest
import tensorflow as tf

from export import classifier_tflite
from export import tflite_verify
from mobilebert_tf import _compat
from tests import helpers
from training import run_classifier as rc
from training import tsv

DATA = os.path.join(helpers.REPO_ROOT, "tests", "data", "sst_tiny")
DEV = os.path.join(DATA, "dev.tsv")


def _model(directory, normalization_type):
  model = helpers.write_tiny_text_model(
      directory, tsv.read_tsv(DEV).texts[0],
      normalization_type=normalization_type)
  if normalization_type == "no_norm":
    helpers.move_no_norm_weights(model["pretrainer"])
    model["checkpoint"] = tf.train.Checkpoint(
        **model["pretrainer"].checkpoint_items).write(
            os.path.join(str(directory), "trained", "model"))
  return model


def _flags(model, tmp_path, *extra, saved_model=True):
  return rc.parse_flags([
      "run_classifier", f"--train_file={DEV}", f"--eval_file={DEV}",
      f"--bert_config_file={model['config_file']}",
      f"--init_checkpoint={model['checkpoint']}",
      f"--vocab_file={model['vocab_file']}",
      *([f"--export_path={tmp_path / 'classifier'}"] if saved_model else []),
      "--epochs=1",
      "--batch_size=32", "--seq_length=32",
      f"--tflite_file={tmp_path / 'classifier.tflite'}", *extra])


def test_float32_tflite_classifier_computes_the_in_memory_probabilities(
    tmp_path):
  model = _model(tmp_path, "layer_norm")
  result = rc.finetune(_flags(model, tmp_path), log=lambda line: None)
  report = result.tflite_report
  assert report.examples == len(tsv.read_tsv(DEV))
  assert report.max_abs_diff <= classifier_tflite.FLOAT_MAX_ABS_DIFF
  assert report.agreement == 1.0 and report.accuracy_drop == 0.0
  with open(tmp_path / "classifier.tflite", "rb") as f:
    flatbuffer = f.read()
  runner = Interpreter(model_content=flatbuffer).get_signature_runner(
      "serving_default")
  inputs = runner.get_input_details()
  assert sorted(inputs) == ["input_mask", "input_type_ids", "input_word_ids"]
  assert all(list(d["shape"]) == [1, 32] and d["dtype"] == np.int32
             for d in inputs.values())
  (name, output), = runner.get_output_details().items()
  assert name == "probabilities" and list(output["shape"]) == [1, 2]
  # Sentences the check did not see, through the serving model's own
  # tokenization: the same probabilities.
  sentences = ["a fine and moving film", "dull , tired and far too long"]
  layer = result.model.get_layer("classifier")
  text_to_inputs = rc.load_text_preprocessing(_flags(model, tmp_path), 32)
  encoded = {k: v.numpy() for k, v in text_to_inputs(
      [tf.constant(sentences)]).items()}
  got = tflite_verify.run_tflite(
      flatbuffer, [{k: v[i:i + 1] for k, v in encoded.items()}
                   for i in range(len(sentences))],
      output_names=classifier_tflite.CLASSIFIER_OUTPUTS)["probabilities"]
  want = tf.nn.softmax(layer(encoded, training=False)).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_qat_classifier_converts_to_full_integer(tmp_path):
  model = _model(tmp_path, "no_norm")
  # A random tiny model's probabilities sit near 0.5, where rounding flips
  # classes: the accuracy bar is measured on a learnt task
  # (benchmarks), not here.
  result = rc.finetune(_flags(
      model, tmp_path, "--quantization_aware", "--tflite_quantization=int8",
      "--num_calibration_examples=16", "--tflite_max_accuracy_drop=100",
      saved_model=False), log=lambda line: None)
  assert result.tflite_report.examples == len(tsv.read_tsv(DEV))
  # Without --export_path the TFLite classifier is the only output.
  assert result.export_path is None and result.max_abs_diff is None
  assert not (tmp_path / "classifier").exists()
  with open(tmp_path / "classifier.tflite", "rb") as f:
    interpreter = Interpreter(model_content=f.read())
  interpreter.allocate_tensors()
  tensors = interpreter.get_tensor_details()
  ops = [op for op in _compat.tflite_op_details(interpreter)
         if op["op_name"] != "DELEGATE"]
  matmuls = [op for op in ops
             if op["op_name"] in ("FULLY_CONNECTED", "BATCH_MATMUL")]
  assert len(matmuls) >= 2 * 13  # the blocks' (see test_quantization)
  for op in matmuls:
    for index in list(op["inputs"]) + list(op["outputs"]):
      if index >= 0:
        assert tensors[index]["dtype"] in (np.int8, np.int32), (
            op["op_name"], tensors[index]["name"])
  # The inputs stay int32 ids and the probabilities float, as on-device
  # classifiers take them.
  runner = interpreter.get_signature_runner("serving_default")
  assert {d["dtype"] for d in runner.get_input_details().values()} == {
      np.int32}
  assert runner.get_output_details()["probabilities"]["dtype"] == np.float32


@pytest.mark.parametrize("report, quantization, bar, fails", [
    (dict(max_abs_diff=2e-4), "none", 1.0, True),
    (dict(max_abs_diff=5e-5), "none", 1.0, False),
    (dict(accuracy=0.885), "dynamic", 1.0, True),  # 1.5 points lost
    (dict(accuracy=0.895), "int8", 1.0, False),
    (dict(accuracy=0.885), "int8", 2.0, False),
    (dict(accuracy=0.92), "int8", 1.0, False),  # gained
])
def test_check_classifier_applies_the_bars(report, quantization, bar, fails):
  values = dict(examples=200, accuracy=0.9, reference_accuracy=0.9,
                agreement=0.95, max_abs_diff=0.01)
  values.update(report)
  report = classifier_tflite.ClassifierReport(**values)
  if fails:
    with pytest.raises(tflite_verify.VerificationError, match="bar"):
      classifier_tflite.check_classifier(report, quantization, bar)
  else:
    classifier_tflite.check_classifier(report, quantization, bar)


@pytest.mark.parametrize("extra, message", [
    (["--tflite_quantization=int8"],
     "--tflite_quantization: only with --tflite_file"),
    (["--encoder=DIR", "--preprocessor=DIR", "--tflite_file=x.tflite"],
     "--tflite_file needs --bert_config_file"),
    (["--tflite_file=x.tflite", "--tflite_quantization=float16"],
     "--tflite_quantization"),
])
def test_tflite_flags_are_checked_before_training(extra, message, tmp_path,
                                                  capsys):
  (tmp_path / "DIR").mkdir()
  source = ([] if "--encoder=DIR" in extra else [
      "--bert_config_file=mobilebert_tf/presets/"
      "uncased_L-24_H-128_B-512_A-4_F-4_OPT.json",
      f"--init_checkpoint={tmp_path / 'ckpt'}", f"--vocab_file={DEV}"])
  args = [a.replace("DIR", str(tmp_path / "DIR")) for a in extra]
  code = rc.main(["run_classifier", f"--train_file={DEV}",
                  f"--eval_file={DEV}",
                  f"--export_path={tmp_path / 'out'}", *source, *args])
  err = capsys.readouterr().err
  assert code == 2 and len(err.strip().splitlines()) == 1, err
  assert message in err, err
  assert not (tmp_path / "out").exists()


def test_an_existing_tflite_file_is_kept(tmp_path, capsys):
  model = _model(tmp_path, "layer_norm")
  (tmp_path / "classifier.tflite").write_bytes(b"keep")
  code = rc.main(["run_classifier", f"--train_file={DEV}",
                  f"--eval_file={DEV}",
                  f"--bert_config_file={model['config_file']}",
                  f"--init_checkpoint={model['checkpoint']}",
                  f"--vocab_file={model['vocab_file']}",
                  f"--export_path={tmp_path / 'classifier'}",
                  f"--tflite_file={tmp_path / 'classifier.tflite'}"])
  err = capsys.readouterr().err
  assert code == 2 and "--overwrite" in err, err
  assert (tmp_path / "classifier.tflite").read_bytes() == b"keep"
  assert not (tmp_path / "classifier").exists()  # before training
