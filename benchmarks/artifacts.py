"""What the benchmark rows share: one set of weights and the files made from it.

`prepare` builds the English OPT (or `--config`) pretrainer once with random
weights (the initializer's truncated normal, stddev 0.02: finite
activations through any depth, as in a fresh model) and writes, into a work
directory, what each row needs to hold exactly those weights:

  config.json                 the config (original JSON keys)
  encoder/ckpt                the encoder (tf-models-official's and the
                              heads_first encoder read it: same object graph)
  pretrainer/ckpt             `tf.train.Checkpoint(**checkpoint_items)`
  tf1/model.ckpt              an original-layout TF1 checkpoint (transformers
                              reads it with `load_tf_weights_in_mobilebert`)
  vocab.txt                   a vocabulary of `vocab_size` made-up pieces
  export/encoder, /preprocessor  `python -m export.to_savedmodel`'s output
  tflite/<q>_b<B>_s<S>.tflite `python -m export.to_tflite`'s output, one per
                              quantization and shape (TFLite shapes are fixed)

The exports go through the CLIs' `main(argv)` in this process (a
subprocess per CLI call would import TensorFlow again each time): the same
flags a user passes, no dependence on the export modules' internals.

Nothing here imports TensorFlow at module level: the per-row memory process
(`benchmarks.memory`) builds a `Setup` of paths only.
"""

# Imports inside functions: each loads only what its row needs.
# pylint: disable=g-import-not-at-top

import contextlib
import dataclasses
import io
import json
import os
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

from benchmarks import rows as rows_lib


@dataclasses.dataclass
class Setup:
  """The shared config, weights and artifact paths of one benchmark run.

  Attributes:
    config_values: dict. `MobileBertConfig.to_dict()`.
    work_dir: str. Where the artifacts live.
    pretrainer: the in-memory `MobileBertPretrainer` (None in the memory
      process).
    with_weights: bool. Rows load the shared weights; False in the memory
      process, where random weights cost the same memory and spare the
      imports that loading needs.
    errors: artifact name -> why it could not be made; the rows that need
      it are skipped with that message.
  """
  config_values: Dict[str, object]
  work_dir: str
  pretrainer: object = None
  with_weights: bool = True
  errors: Dict[str, str] = dataclasses.field(default_factory=dict)

  def path(self, *parts: str) -> str:
    return os.path.join(self.work_dir, *parts)

  @property
  def config_file(self) -> str:
    return self.path("config.json")

  @property
  def encoder_checkpoint(self) -> str:
    return self.path("encoder", "ckpt")

  @property
  def pretrainer_checkpoint(self) -> str:
    return self.path("pretrainer", "ckpt")

  @property
  def tf1_checkpoint(self) -> str:
    return self.path("tf1", "model.ckpt")

  @property
  def vocab_file(self) -> str:
    return self.path("vocab.txt")

  @property
  def export_dir(self) -> str:
    return self.path("export")

  @property
  def hub_dir(self) -> str:
    """The encoder SavedModel (`export.to_savedmodel` writes DIR/encoder)."""
    return self.path("export", "encoder")

  def tflite_path(self, quantization: str, batch: int, seq: int) -> str:
    return self.path("tflite", f"{quantization}_b{batch}_s{seq}.tflite")

  def config(self):
    """The `MobileBertConfig` (imports mobilebert_tf, and so TensorFlow)."""
    from mobilebert_tf import MobileBertConfig
    return MobileBertConfig.from_dict(self.config_values)

  def missing(self, row, shape: Tuple[int, int]) -> Optional[str]:
    """Why a `rows.Row` cannot run at `shape` for lack of a file, or None."""
    if row.family in ("hub", "tflite") and "export" in self.errors:
      return self.errors["export"]
    if row.family == "tflite":
      name = os.path.basename(self.tflite_path(row.quantization, *shape))
      return self.errors.get(name)
    return None

  @classmethod
  def from_work_dir(cls, work_dir: str) -> "Setup":
    """The paths of a prepared work directory, without weights."""
    with open(os.path.join(work_dir, "config.json"), encoding="utf-8") as f:
      values = json.load(f)
    return cls(config_values=values, work_dir=work_dir, with_weights=False)


def _run_cli(main: Callable[[Sequence[str]], int], argv: Sequence[str]):
  """Runs a CLI's `main` in-process; raises RuntimeError unless it exits 0."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(list(argv))
  if code != 0:
    lines = (err.getvalue().strip() or out.getvalue().strip()).splitlines()
    raise RuntimeError(f"{argv[0]} exited with {code}: "
                       f"{lines[-1] if lines else '(no output)'}")
  return out.getvalue()


def prepare(config, work_dir: str, row_ids: Sequence[str],
            shapes: Sequence[Tuple[int, int]],
            log: Callable[[str], None]) -> Setup:
  """Builds the shared weights and the artifacts `row_ids` need.

  Args:
    config: `MobileBertConfig`.
    work_dir: str. An empty directory for the artifacts.
    row_ids: the rows to run (ids of `rows.ROWS`).
    shapes: the (batch, seq) shapes; TFLite models are made per shape.
    log: called with progress lines.

  Returns:
    The `Setup`; artifacts that failed are in `Setup.errors`.
  """
  import tensorflow as tf
  import tf_keras
  from mobilebert_tf import build_pretrainer
  from mobilebert_tf import files
  from mobilebert_tf.vocab import SPECIAL_TOKENS

  setup = Setup(config_values=config.to_dict(), work_dir=work_dir)
  files.write_text(setup.config_file, config.to_json_string(),
                   overwrite=True)
  log(f"Building the model ({config.num_hidden_layers} blocks, random "
      "weights)")
  tf_keras.utils.set_random_seed(0)
  setup.pretrainer = build_pretrainer(config)
  tf.train.Checkpoint(encoder=setup.pretrainer.encoder_network).write(
      setup.encoder_checkpoint)

  needed = {rows_lib.BY_ID[r].family for r in row_ids}
  if "torch" in needed:
    from checkpoints import tf1_io
    tf1_io.export_tf1_checkpoint(setup.pretrainer, config,
                                 setup.tf1_checkpoint)
  if needed & {"hub", "tflite"}:
    tf.train.Checkpoint(**setup.pretrainer.checkpoint_items).write(
        setup.pretrainer_checkpoint)
    tokens = list(SPECIAL_TOKENS) + [
        f"w{i}" for i in range(config.vocab_size - len(SPECIAL_TOKENS))]
    files.write_text(setup.vocab_file, "\n".join(tokens) + "\n",
                     overwrite=True)
    from export import to_savedmodel
    log(f"Exporting the SavedModel (python -m export.to_savedmodel) to "
        f"{setup.export_dir}")
    start = time.time()
    try:
      _run_cli(to_savedmodel.main, [
          "export.to_savedmodel", f"--bert_config_file={setup.config_file}",
          f"--model_checkpoint_path={setup.pretrainer_checkpoint}",
          f"--vocab_file={setup.vocab_file}", "--do_lower_case=true",
          f"--export_path={setup.export_dir}",
          f"--seq_length={shapes[0][1]}", "--overwrite"])
      log(f"  {time.time() - start:.0f} s")
    except RuntimeError as e:
      setup.errors["export"] = str(e)
      log(f"  failed: {e}")
  tflite_rows = [rows_lib.BY_ID[r] for r in row_ids
                 if rows_lib.BY_ID[r].family == "tflite"]
  if tflite_rows and "export" not in setup.errors:
    from export import to_tflite
    log("Converting to TFLite (python -m export.to_tflite)")
    os.makedirs(setup.path("tflite"), exist_ok=True)
    for row in tflite_rows:
      for batch, seq in shapes:
        path = setup.tflite_path(row.quantization, batch, seq)
        start = time.time()
        try:
          _run_cli(to_tflite.main, [
              "export.to_tflite", f"--saved_model_dir={setup.hub_dir}",
              f"--output={path}", f"--quantization={row.quantization}",
              f"--seq_length={seq}", f"--batch_size={batch}", "--overwrite"])
          log(f"  {os.path.basename(path)}: {time.time() - start:.0f} s")
        except RuntimeError as e:
          setup.errors[os.path.basename(path)] = str(e)
          log(f"  {os.path.basename(path)} failed: {e}")
  return setup

