"""A tiny model and its files, made once per test session, for the tests
that run the documented commands and CLIs as a user would (fresh processes).

`build(directory)` writes, under the names the README's commands use:

| name              | what it is                                               |
|-------------------|----------------------------------------------------------|
| `CONFIG.json`     | a tiny MobileBERT config (2 blocks, width 32)            |
| `vocab.txt`       | an uncased WordPiece vocabulary covering the TSV files  |
| `CKPT`            | a TF2 checkpoint prefix of the pretrainer (random init)  |
| `model.ckpt`      | the same weights as an original-layout TF1 checkpoint    |
| `DIR/encoder`     | the TF-Hub encoder export of `CKPT`                       |
| `DIR/preprocessor`| the matching preprocessor export                         |
| `train.tsv`, `dev.tsv` | GLUE-style sentence classification files             |
| `corpus.txt`      | plain text, one sentence per line                        |

and links the repository's top-level packages into `directory`, so that
`python -m checkpoints.convert ...` and relative paths such as
`checkpoints/demo/bert_config.json` work there as in a checkout, while
everything a command writes stays in `directory`.
"""

import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DATA = os.path.join(REPO, "tests", "data", "sst_tiny")
_LINKED = ("mobilebert_tf", "checkpoints", "export", "training", "benchmarks",
           "tests", "setup.py", "Makefile", "constraints.txt")

TINY_CONFIG = dict(
    hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=32, intra_bottleneck_size=16,
    trigram_input=True, use_bottleneck=True, key_query_shared_bottleneck=True,
    num_feedforward_networks=2, normalization_type="no_norm",
    hidden_act="relu", max_position_embeddings=128, type_vocab_size=2,
    classifier_activation=False, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0)


# README.md's "Export to TF-Hub" command, word for word (tests/test_docs.py
# checks that it is there): running it here is how the README's command is
# tested, and the workspace gets its `DIR`.
EXPORT_COMMAND = (
    "python -m export.to_savedmodel --bert_config_file=CONFIG.json \\\n"
    "  --model_checkpoint_path=CKPT --vocab_file=vocab.txt "
    "--do_lower_case=true \\\n"
    "  --export_path=DIR --seq_length=32 --overwrite\n")


def environment():
  """The environment of a fresh process run in a workspace."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  # `python` and `pip` are the suite's interpreter's, as in an activated venv.
  env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env["PYTHONUNBUFFERED"] = "1"
  return env


def run(command, cwd, timeout=600, check=True, **kwargs):
  """Runs a shell command in a fresh process; returns CompletedProcess."""
  result = subprocess.run(
      ["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=environment(),
      capture_output=True, text=True, timeout=timeout, **kwargs)
  if check and result.returncode:
    raise AssertionError(
        f"`{command}` exited {result.returncode}:\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-3000:]}")
  return result


class CliProcess:
  """A `python -m MODULE ARGS...` process of the checkout, its output (stdout
  and stderr) in a file, for tests that watch, kill or restart a CLI."""

  def __init__(self, module, args, log_path, env=None, timeout=240):
    self.log_path = log_path
    self.timeout = timeout
    environment_ = environment()
    environment_.update(env or {})
    self._log = open(log_path, "w")
    self.process = subprocess.Popen(
        [sys.executable, "-m", module] + list(args), cwd=REPO,
        env=environment_, stdout=self._log, stderr=subprocess.STDOUT)

  def output(self):
    with open(self.log_path) as f:
      return f.read()

  def wait(self):
    """Waits for exit 0 (else AssertionError); returns the output."""
    try:
      code = self.process.wait(self.timeout)
    finally:
      self.kill()
    assert code == 0, f"exit {code}:\n{self.output()[-3000:]}"
    return self.output()

  def wait_for(self, text):
    """Waits until `text` is in the output, while the process runs."""
    deadline = time.time() + self.timeout
    while text not in self.output():
      assert self.process.poll() is None, (
          f"exited {self.process.returncode} before {text!r}:\n"
          f"{self.output()[-3000:]}")
      assert time.time() < deadline, f"no {text!r} in {self.timeout} s"
      time.sleep(0.2)

  def kill(self):
    """SIGKILL (if still running), then closes the log."""
    if self.process.poll() is None:
      self.process.kill()
      self.process.wait()
    self._log.close()


def kill_after_step(module, args, step, log_path, timeout=240):
  """Runs a trainer CLI that pauses after `step` (the loop's test hook) and
  SIGKILLs it there, as a crash at that moment would; returns its output."""
  from training import pretrain  # pylint: disable=g-import-not-at-top
  run = CliProcess(module, args, log_path, timeout=timeout,
                   env={pretrain.PAUSE_ENV: str(step)})
  try:
    run.wait_for(f"Pausing after step {step}")
  finally:
    run.kill()
  return run.output()


def _sentences():
  sentences = []
  for name in ("train.tsv", "dev.tsv"):
    with open(os.path.join(_DATA, name), encoding="utf-8") as f:
      sentences += [line.split("\t")[0] for line in f.read().splitlines()[1:]]
  return sentences


def _vocab(sentences):
  from mobilebert_tf.vocab import SPECIAL_TOKENS  # pylint: disable=g-import-not-at-top
  words = sorted({w for s in sentences for w in s.lower().split()})
  chars = sorted({c for w in words for c in w})
  return (list(SPECIAL_TOKENS) + [w for w in words if w not in chars] +
          chars + ["##" + c for c in chars])


_SCRIPT = r"""
import json, sys
import tensorflow as tf
import tf_keras
from checkpoints import tf1_io
from mobilebert_tf import MobileBertConfig, build_pretrainer
config = MobileBertConfig.from_json_file("CONFIG.json")
tf_keras.utils.set_random_seed(0)
pretrainer = build_pretrainer(config, with_nsp=True)
checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items)
checkpoint.save_counter  # as Checkpoint.save writes it
checkpoint.write("CKPT")
tf1_io.export_tf1_checkpoint(pretrainer, config, "model.ckpt")
"""


def build(directory):
  """Writes the workspace (see the module docstring); returns `directory`."""
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  for name in _LINKED:
    os.symlink(os.path.join(REPO, name), os.path.join(directory, name))
  for name in ("train.tsv", "dev.tsv"):
    shutil.copyfile(os.path.join(_DATA, name), os.path.join(directory, name))
  sentences = _sentences()
  with open(os.path.join(directory, "corpus.txt"), "w", encoding="utf-8") as f:
    f.write("".join(s + "\n" for s in sentences))
  tokens = _vocab(sentences)
  with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("".join(t + "\n" for t in tokens))
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(directory, "CONFIG.json"), "w",
            encoding="utf-8") as f:
    json.dump(dict(TINY_CONFIG, vocab_size=len(tokens)), f, indent=2)
  run(f"{sys.executable} -c '{_SCRIPT}'", cwd=directory)
  run(EXPORT_COMMAND, cwd=directory)
  return directory


def build_once(directory):
  """`build(directory)` unless a complete build is there; returns it.

  A build that failed half-way is removed and made again. Callers that may
  run concurrently hold a lock around this call.
  """
  directory = os.fspath(directory)
  complete = os.path.join(directory, ".complete")
  if not os.path.exists(complete):
    shutil.rmtree(directory, ignore_errors=True)
    build(directory)
    with open(complete, "w", encoding="utf-8"):
      pass
  return directory
