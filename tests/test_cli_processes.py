"""Every command-line tool, in a fresh process, on real inputs.

In-process CLI tests can pass because another test already imported what
the tool forgets to import (tensorflow_text, say). These run each
documented mode as a user would: `python -m ...` in a new interpreter, in
a workspace of tiny real files (`tests/workspace.py`). The README's own
commands are run by tests/test_docs.py; these cover the other modes.
"""

import os

import pytest

from tests import workspace


@pytest.fixture
def ws(workspace_dir):
  return workspace_dir


# export.to_savedmodel from an original TF1 checkpoint: the README's `make
# demo` command (the bundled TF1 demo model) and, with explicit flags from a
# TF2 checkpoint, the README's export command (tests/workspace.py).


# dynamic: the README's command; float16: docs/tflite.md's (tests/test_docs.py).
@pytest.mark.parametrize("quantization, extra", [
    ("none", ""),
    # Full int8 without quantization-aware training misses the default bar
    # (docs/tflite.md); a user who accepts that says so.
    ("int8", "--representative_text=corpus.txt --min_cosine=0.5 "
     "--max_relative_error=2.0"),
])
def test_tflite_quantizations(ws, quantization, extra):
  output = f"cli_{quantization}.tflite"
  workspace.run(
      f"python -m export.to_tflite --saved_model_dir=DIR/encoder "
      f"--output={output} --quantization={quantization} --seq_length=16 "
      f"{extra}", cwd=ws)
  assert os.path.getsize(os.path.join(ws, output)) > 0


def test_int8_without_calibration_text_exits_2_with_one_line(ws):
  result = workspace.run(
      "python -m export.to_tflite --saved_model_dir=DIR/encoder "
      "--output=refused.tflite --quantization=int8 --seq_length=16",
      cwd=ws, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  error_lines = [l for l in result.stderr.splitlines()
                 if l.startswith("python -m export.to_tflite: error:")]
  assert len(error_lines) == 1 and "--representative_text" in error_lines[0]
  assert "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(ws, "refused.tflite"))


def test_finetune_from_a_checkpoint_then_serve_with_saved_model_cli(ws):
  """From a TF2 checkpoint; the string-input serving model then runs in
  TensorFlow's saved_model_cli through the project's TF Text shim."""
  workspace.run(
      "python -m training.run_classifier --train_file=train.tsv "
      "--eval_file=dev.tsv --bert_config_file=CONFIG.json "
      "--init_checkpoint=CKPT --vocab_file=vocab.txt --do_lower_case=true "
      "--export_path=classifier --epochs=1 --seq_length=32",
      cwd=ws)
  shown = workspace.run(
      "python -m export.saved_model_cli show --dir classifier --all",
      cwd=ws).stdout
  assert "serving_default" in shown and "DT_STRING" in shown
  result = workspace.run(
      "python -m export.saved_model_cli run --dir classifier --tag_set serve "
      "--signature_def serving_default "
      "--input_exprs 'sentence=[\"a gorgeous film .\", \"a dull mess .\"]'",
      cwd=ws)
  assert "Result for output key" in result.stdout


def test_stock_saved_model_cli_cannot_run_the_preprocessor(ws):
  """Why the shim exists (if this starts passing, TF loads TF Text ops by
  itself and the shim can go)."""
  result = workspace.run(
      "saved_model_cli run --dir DIR/preprocessor --tag_set serve "
      "--signature_def serving_default --input_exprs 'sentences=[\"a .\"]'",
      cwd=ws, check=False)
  assert result.returncode != 0
  assert "Op type not registered" in result.stderr


def test_convert_then_restore_in_another_process(ws):
  workspace.run(
      "python -m checkpoints.convert --bert_config_file=CONFIG.json "
      "--tf1_checkpoint_path=model.ckpt --tf2_checkpoint_path=out/converted",
      cwd=ws)
  script = (
      "import tensorflow as tf, numpy as np\n"
      "from mobilebert_tf import build_pretrainer, load_config\n"
      "p = build_pretrainer(load_config('CONFIG.json'), with_nsp=True)\n"
      "tf.train.Checkpoint(**p.checkpoint_items).restore('out/converted')"
      ".assert_consumed()\n"
      "q = build_pretrainer(load_config('CONFIG.json'), with_nsp=True)\n"
      "tf.train.Checkpoint(**q.checkpoint_items).restore('CKPT')"
      ".assert_consumed()\n"
      "print(max(float(np.abs(a - b).max()) for a, b in "
      "zip(p.get_weights(), q.get_weights())))\n")
  result = workspace.run(f"python -c \"{script}\"", cwd=ws)
  assert float(result.stdout.split()[-1]) == 0.0
