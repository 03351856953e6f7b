"""Test helpers shared by several test files: tiny configs, inputs, peers.

Import as `from tests import helpers` (fixtures live in conftest.py).
"""

import datetime
import glob
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import types

import numpy as np

from benchmarks import machine
from benchmarks import peers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_CONFIG = dict(
    vocab_size=64, hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=24, intra_bottleneck_size=16,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm", hidden_act="relu",
    max_position_embeddings=32, type_vocab_size=2, classifier_activation=False,
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.1)


def write_word_vocab(path, words):
  """A WordPiece vocabulary of whole `words`, with every character of them
  also as a piece and as a `##` continuation, after the special tokens.

  Returns:
    str, the path written.
  """
  chars = sorted({c for w in words for c in w})
  tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(words) +
            [c for c in chars if c not in words] + ["##" + c for c in chars])
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tokens))
  return str(path)


def write_tiny_text_model(directory, sentences, seed=0,
                          normalization_type="layer_norm"):
  """A random tiny MobileBERT for the fine-tuning CLI's tests.

  Writes into `directory`: `vocab.txt` (the sentences' words, their
  characters and `##` characters, after the special tokens), the
  `bert_config.json` of a 2-block, width-32 MobileBERT with 64 positions,
  and a TF2 checkpoint of its pretrainer under `checkpoint/`.
  `normalization_type` "no_norm" makes one that QAT can fine-tune.

  Returns:
    dict with `vocab_file`, `config_file`, `checkpoint` (the prefix) and
    `pretrainer`.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tf_keras
  from mobilebert_tf import MobileBertConfig
  from mobilebert_tf import build_pretrainer
  # pylint: enable=g-import-not-at-top
  directory = str(directory)
  words = sorted({w for s in sentences for w in s.split()})
  chars = sorted({c for w in words for c in w})
  tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
            [w for w in words if w not in chars] + chars +
            ["##" + c for c in chars])
  vocab_file = os.path.join(directory, "vocab.txt")
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tokens))
  config = MobileBertConfig(
      vocab_size=len(tokens), hidden_size=32, embedding_size=16,
      num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
      intra_bottleneck_size=16, trigram_input=True, use_bottleneck=True,
      key_query_shared_bottleneck=True, num_feedforward_networks=2,
      normalization_type=normalization_type, hidden_act="relu",
      max_position_embeddings=64, type_vocab_size=2,
      classifier_activation=True, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0, initializer_range=0.1)
  config_file = os.path.join(directory, "bert_config.json")
  with open(config_file, "w", encoding="utf-8") as f:
    f.write(config.to_json_string())
  tf_keras.utils.set_random_seed(seed)
  pretrainer = build_pretrainer(config)
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items).save(
      os.path.join(directory, "checkpoint", "model"))
  return dict(vocab_file=vocab_file, config_file=config_file,
              checkpoint=checkpoint, pretrainer=pretrainer)


def move_no_norm_weights(model, seed=1):
  """Moves every NoNorm offset and scale by N(0, 0.1), as pretraining leaves
  them: a fresh model's all-zero offsets fail the full-int8 conversion of a
  QAT model (docs/tflite.md, "Known limits")."""
  rng = np.random.default_rng(seed)
  for weight in model.weights:
    if weight.name.endswith(("/beta:0", "/gamma:0")):
      weight.assign_add(rng.normal(0, 0.1, weight.shape).astype(np.float32))


def make_encoder_inputs(config, batch=3, seq=8, num_predictions=3, seed=0):
  """int32 inputs with padding (one full row) and both token types."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, config.vocab_size, size=(batch, seq)).astype(np.int32)
  mask = np.ones((batch, seq), np.int32)
  for row in range(1, batch):
    mask[row, max(2, seq - 2 * row):] = 0
  ids = ids * mask
  types = np.zeros((batch, seq), np.int32)
  types[:, seq // 2:] = 1
  types *= mask
  positions = np.stack([rng.choice(seq, num_predictions, replace=False)
                        for _ in range(batch)]).astype(np.int32)
  return dict(input_word_ids=ids, input_mask=mask, input_type_ids=types,
              masked_lm_positions=positions)


def transformers_config(config, **extra):
  """transformers' `MobileBertConfig` computing what `config` computes.

  The translation is the benchmark's (`benchmarks.peers`), so both compare
  with transformers the same way.

  Args:
    config: a `MobileBertConfig` or its `to_dict()`.
    **extra: further transformers arguments (`num_labels`, ...).
  """
  values = config if isinstance(config, dict) else config.to_dict()
  return peers.transformers_config(values, **extra)


def run_test_module(module, out_dir, timeout=300):
  """Runs `python -m tests.<module> OUT_DIR` in a fresh process.

  For the parts of a test that need a process of their own: two logical
  CPU devices (replica tests) exist only if made before TensorFlow starts.
  The module's `__main__` writes its results into `out_dir`.
  """
  from tests import workspace  # pylint: disable=g-import-not-at-top
  done = subprocess.run(
      [sys.executable, "-m", f"tests.{module}", str(out_dir)],
      cwd=workspace.REPO, env=workspace.environment(), timeout=timeout,
      capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]


def run_benchmark(program, flag_args, output_dir, timeout=1200):
  """Runs `python -m benchmarks.<program> FLAGS` in a fresh process (as a
  user runs it, nothing imported by other tests) and reads the one JSON and
  one markdown result file it writes into `output_dir`.

  Returns:
    A namespace: `argv` ([program] + flag_args), `started` (UTC),
    `json_path`, `md_path`, `result` (the parsed JSON), `markdown`.
  """
  started = datetime.datetime.now(datetime.timezone.utc)
  done = subprocess.run(
      [sys.executable, "-m", f"benchmarks.{program}", *flag_args],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
      check=False, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
  assert done.returncode == 0, done.stderr[-3000:]
  json_files = glob.glob(os.path.join(output_dir, "*.json"))
  md_files = glob.glob(os.path.join(output_dir, "*.md"))
  assert len(json_files) == 1 and len(md_files) == 1, os.listdir(output_dir)
  with open(json_files[0], encoding="utf-8") as f:
    result = json.load(f)
  with open(md_files[0], encoding="utf-8") as f:
    markdown = f.read()
  return types.SimpleNamespace(
      argv=[program, *flag_args], started=started, json_path=json_files[0],
      md_path=md_files[0], result=result, markdown=markdown)


def _cpuinfo_model():
  """The first "model name" of /proc/cpuinfo, read independently of
  `benchmarks.machine`; None where there is no /proc/cpuinfo."""
  if not os.path.exists("/proc/cpuinfo"):
    return None
  with open("/proc/cpuinfo", encoding="utf-8") as f:
    return next(line.split(":", 1)[1].strip() for line in f
                if line.startswith("model name"))


def assert_records_the_run(run, benchmark, packages, max_start_delay):
  """A --quick result file pair of `run_benchmark` names and records its run.

  Checks the `<benchmark>-<UTC date-time>-<cpu slug>-quick.{json,md}` names,
  the date (within `max_start_delay` of the start), the CPU, the core count,
  the versions of `packages`, the argv and the quick flag, and that the
  markdown states the date, CPU and TensorFlow version and names its JSON.
  """
  result, m = run.result, run.result["machine"]
  stem = f"{benchmark}-{m['timestamp']}-{m['cpu_slug']}-quick"
  assert os.path.basename(run.json_path) == stem + ".json"
  assert os.path.basename(run.md_path) == stem + ".md"
  assert re.fullmatch(r"\d{8}T\d{6}Z", m["timestamp"])
  date = datetime.datetime.strptime(m["date"], "%Y-%m-%d %H:%M:%S UTC")
  date = date.replace(tzinfo=datetime.timezone.utc)
  assert abs(date - run.started) < max_start_delay
  cpu = _cpuinfo_model()
  if cpu is not None:
    assert m["cpu"] == cpu
  assert m["cpu_slug"] == machine.cpu_slug(m["cpu"])
  assert m["logical_cores"] == os.cpu_count()
  for package in packages:
    assert m["versions"][package] == importlib.metadata.version(package)
  assert result["argv"] == run.argv[1:]
  assert result["flags"]["quick"] is True and result["quick"] is True
  markdown = run.markdown
  assert m["date"] in markdown and m["cpu"] in markdown
  assert f"TensorFlow {m['versions']['tensorflow']}" in markdown
  assert os.path.basename(run.json_path) in markdown
