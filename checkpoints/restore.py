"""Restoring a checkpoint into a pretrainer, strictly: TF2 or original TF1.

The one place that finds a checkpoint from a user's path (`resolve_prefix`),
tells the two layouts apart (`checkpoint_format`) and restores one into a
`MobileBertPretrainer` (`load_checkpoint`), failing unless it fits exactly.
Every command that takes a checkpoint (`checkpoints.convert`,
`export.to_savedmodel`, fine-tuning, the demo) goes through here.

Example:

>>> pretrainer = build_pretrainer(config)
>>> load_checkpoint(pretrainer, config, "mobilebert/mobilebert_variables.ckpt")
'tf1'
"""

import os
import re
import tempfile
import uuid
from typing import Callable, Dict, List, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.layers import quantization

# Suffixes of a checkpoint's files; a path ending in one names the prefix.
_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_TF2_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_TF1_MARKER = "bert/embeddings/word_embeddings"
# Names shown in a one-line error before "(and N more)".
_MAX_NAMES = 5


def _list_names(names, limit: int = _MAX_NAMES) -> str:
  names = sorted(names)
  more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
  return ", ".join(names[:limit]) + more


def _prefixes_in(directory: str) -> List[str]:
  return sorted(p[:-len(".index")] for p in
                tf.io.gfile.glob(os.path.join(directory, "*.index")))


# === Finding the checkpoint ===


def resolve_prefix(path: str, flag: str = "--model_checkpoint_path",
                   log: Callable[[str], None] = logging.info) -> str:
  """The prefix of the checkpoint that `path` names.

  Accepts the prefix itself (`DIR/model.ckpt`, whose files are
  `DIR/model.ckpt.index` and `DIR/model.ckpt.data-*`), one of its files
  (`.index`, `.data-*`, `.meta`: the suffix is stripped), or a directory
  with a `checkpoint` state file (its latest checkpoint) or a single
  `*.index`. Each guess is reported through `log`.

  Args:
    path: str. What the user passed.
    flag: str. The flag or argument that holds `path`, for messages.
      Defaults to "--model_checkpoint_path".
    log: callable taking one line. Defaults to absl `logging.info`.

  Returns:
    The prefix: `prefix + ".index"` exists.

  Raises:
    FileNotFoundError: no checkpoint there; the message lists the
      checkpoints of that directory, if any.
  """
  path = os.fspath(path)
  if _FILE_SUFFIX.search(path) and not tf.io.gfile.exists(path + ".index"):
    prefix = _FILE_SUFFIX.sub("", path)
    log(f"{flag} names the file {os.path.basename(path)}, not the checkpoint "
        f"prefix; using the prefix {prefix}")
    path = prefix
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    candidates = _prefixes_in(path)
    if latest is None and len(candidates) == 1:
      latest = candidates[0]
    if latest is None:
      hint = (f" It holds several: {_list_names(candidates)}; pass one "
              "prefix." if candidates else "")
      raise FileNotFoundError(
          f"No checkpoint in directory {path}.{hint} {flag} takes a "
          "checkpoint prefix, e.g. DIR/model.ckpt (the files are "
          "PREFIX.index and PREFIX.data-*).")
    log(f"{flag} is a directory; using the checkpoint {latest}")
    path = latest
  if not tf.io.gfile.exists(path + ".index"):
    directory = os.path.dirname(os.path.abspath(path))
    candidates = (_prefixes_in(directory) if tf.io.gfile.isdir(directory)
                  else [])
    hint = (f" Checkpoints in that directory: {_list_names(candidates)}."
            if candidates else "")
    raise FileNotFoundError(
        f"Checkpoint not found: {path}.index does not exist.{hint} Pass the "
        f"checkpoint prefix to {flag}, e.g. DIR/model.ckpt.")
  return path


def checkpoint_shapes(prefix: str) -> Dict[str, Tuple[int, ...]]:
  """{key: shape} of a checkpoint.

  Raises:
    ValueError: the files are not a readable checkpoint.
  """
  try:
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    shapes = reader.get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError, IndexError, OSError) as e:
    message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    raise ValueError(
        f"Cannot read checkpoint {prefix}: {message}. The files may be "
        "truncated or corrupted; copy or download them again.") from None
  return {k: tuple(v) for k, v in shapes.items()}


def checkpoint_format(checkpoint_path: str,
                      flag: str = "--model_checkpoint_path",
                      log: Callable[[str], None] = logging.info
                      ) -> Tuple[str, str]:
  """Finds a checkpoint and detects its layout from its keys.

  Args:
    checkpoint_path: str. As `resolve_prefix` accepts.
    flag: str. The flag that holds `checkpoint_path`, for messages.
    log: callable taking one line (`resolve_prefix`'s guesses).

  Returns:
    `(prefix, fmt)`: the resolved prefix and "tf2" for an object-based
    checkpoint (`tf.train.Checkpoint`, ours or tf-models-official's), "tf1"
    for an original name-based MobileBERT checkpoint (`bert/embeddings/...`).

  Raises:
    FileNotFoundError: no checkpoint at `checkpoint_path`.
    ValueError: the files are not a readable checkpoint, or neither layout.
  """
  prefix = resolve_prefix(checkpoint_path, flag=flag, log=log)
  keys = checkpoint_shapes(prefix)
  if _OBJECT_GRAPH_KEY in keys:
    return prefix, "tf2"
  if _TF1_MARKER in keys:
    return prefix, "tf1"
  raise ValueError(
      f"Checkpoint {prefix} is neither an object-based TF2 checkpoint nor an "
      f"original TF1 MobileBERT checkpoint (no `{_TF1_MARKER}`). First keys: "
      f"{sorted(keys)[:5]}")


# === Restoring ===


def unique_variables(*objects) -> List[tf.Variable]:
  """The variables of `objects`, each once (a tied table is shared)."""
  seen, result = set(), []
  for obj in objects:
    for variable in obj.variables:
      if variable.ref() not in seen:
        seen.add(variable.ref())
        result.append(variable)
  return result


def _model_variables(pretrainer) -> List[tf.Variable]:
  """The unique variables of `checkpoint_items` (the tied table once),
  without quantization ranges (see `check_tf2_fits`)."""
  return [v for v in unique_variables(*pretrainer.checkpoint_items.values())
          if not quantization.RANGE_VARIABLE_NAME.search(v.name)]


def _without_ranges(keys):
  return {k for k in keys if not quantization.RANGE_KEY.search(k)}


def _expected_tf2_shapes(pretrainer) -> Dict[str, Tuple[int, ...]]:
  """{key: shape} a fitting TF2 checkpoint has for `checkpoint_items`.

  Writes the model's checkpoint to TF's in-memory file system and reads its
  keys back: the object-graph keys are exactly those of any
  `tf.train.Checkpoint(**checkpoint_items)` of the same architecture.
  """
  prefix = f"ram://mobilebert_restore_{uuid.uuid4().hex}/ckpt"
  try:
    path = tf.train.Checkpoint(**pretrainer.checkpoint_items).write(prefix)
    return checkpoint_shapes(path)
  finally:
    tf.io.gfile.rmtree(os.path.dirname(prefix))


def _model_keys(shapes, roots) -> Dict[str, Tuple[int, ...]]:
  """The variable values under `roots` (no optimizer slots, no counters)."""
  return {k: v for k, v in shapes.items()
          if k.split("/", 1)[0] in roots and k.endswith(_TF2_VARIABLE_SUFFIX)
          and ".OPTIMIZER_SLOT" not in k}


def check_tf2_fits(pretrainer, prefix: str) -> bool:
  """Checks that a TF2 checkpoint holds exactly `pretrainer`'s variables.

  Under the roots of `pretrainer.checkpoint_items`: every model variable has
  a value of its shape, and no checkpoint variable is left over (so a
  checkpoint of another config fails). Other roots (an optimizer,
  `next_sentence` for a pretrainer without it) are ignored, and so are
  quantization-aware training's ranges (`layers.quantization`): a float
  checkpoint starts QAT with fresh ranges, and a QAT checkpoint restores
  into a float model.

  Returns:
    Whether the model has QAT ranges that the checkpoint lacks (they keep
    their initial values).

  Raises:
    ValueError: listing what does not fit.
  """
  expected = _expected_tf2_shapes(pretrainer)
  roots = set(pretrainer.checkpoint_items)
  want = _model_keys(expected, roots)
  have = _model_keys(checkpoint_shapes(prefix), roots)
  if not have:
    raise ValueError(
        f"Checkpoint {prefix} has no variables under {sorted(roots)}: expected "
        "a checkpoint written as tf.train.Checkpoint(**pretrainer."
        "checkpoint_items) (ours, tf-models-official's, or the converter's).")
  strip = lambda names: [n[:-len(_TF2_VARIABLE_SUFFIX)] for n in names]
  missing = strip(_without_ranges(set(want) - set(have)))
  unused = strip(_without_ranges(set(have) - set(want)))
  mismatched = [
      f"{k[:-len(_TF2_VARIABLE_SUFFIX)]}: checkpoint {have[k]} vs model "
      f"{want[k]}" for k in sorted(set(want) & set(have)) if have[k] != want[k]]
  problems = []
  if mismatched:
    problems.append(f"{len(mismatched)} shape mismatches: "
                    f"{_list_names(mismatched, 3)}")
  if missing:
    problems.append(f"{len(missing)} model variables missing from the "
                    f"checkpoint: {_list_names(missing)}")
  if unused:
    problems.append(f"{len(unused)} checkpoint variables the model does not "
                    f"have: {_list_names(unused)}")
  if problems:
    raise ValueError(f"Checkpoint {prefix} does not fit the config: "
                     + "; ".join(problems) + ".")
  return (_without_ranges(want) != set(want) and
          _without_ranges(have) == set(have))


def _restore_tf2(pretrainer, prefix: str) -> None:
  """Restores a TF2 checkpoint of `checkpoint_items` after `check_tf2_fits`."""
  fresh_ranges = check_tf2_fits(pretrainer, prefix)
  checkpoint = tf.train.Checkpoint(**pretrainer.checkpoint_items)
  try:
    # `read`, not `restore`: no `save_counter` to match (checkpoints written
    # with `write` have none). A trainer's checkpoint also holds the
    # optimizer and counters, which the model does not take: expected.
    status = checkpoint.read(prefix)
    if not fresh_ranges:
      # (Fresh QAT ranges are objects the checkpoint cannot match; the NaN
      # sentinel of `load_checkpoint` still checks every other variable.)
      status.assert_existing_objects_matched()
    status.expect_partial()
  except (AssertionError, ValueError) as e:
    raise ValueError(f"Checkpoint {prefix} does not fit the config: "
                     f"{str(e).strip().splitlines()[0]}") from None


def load_checkpoint(pretrainer, config: MobileBertConfig,
                    checkpoint_path: str,
                    log: Callable[[str], None] = logging.info,
                    flag: Optional[str] = None) -> str:
  """Restores a checkpoint into `pretrainer`; fails unless it fits exactly.

  Accepts
  * a TF2 checkpoint of `tf.train.Checkpoint(**pretrainer.checkpoint_items)`
    (the converter's, ours, or tf-models-official's MobileBERT pretrainer's;
    other objects in it, e.g. an optimizer or `next_sentence`, are ignored);
  * an original TF1 MobileBERT checkpoint (name-based, `bert/...`, `cls/...`),
    converted on the fly by `checkpoints.convert.convert` (into a temporary
    TF2 checkpoint; optimizer slots are dropped, the NSP head is kept iff
    `pretrainer` has one).

  Checks, before and after restoring: every model variable has a checkpoint
  value of its shape and no checkpoint variable under the model's roots is
  left unused (so a checkpoint of another config fails);
  `assert_existing_objects_matched()`; and every model variable was actually
  written (they are set to NaN first).

  Args:
    pretrainer: the `MobileBertPretrainer` to restore into
      (`build_pretrainer(config)`, any `attention_layout`).
    config: its configuration (for the TF1 name table).
    checkpoint_path: str. Checkpoint prefix, one of its files or its
      directory (see `resolve_prefix`).
    log: callable taking one progress line (the converter's). Defaults to
      absl `logging.info`.
    flag: str. The flag that holds `checkpoint_path`, for messages. Defaults
      to "--model_checkpoint_path".

  Returns:
    "tf1" or "tf2", the detected format.

  Raises:
    FileNotFoundError: no checkpoint at `checkpoint_path`.
    ValueError: the checkpoint is unreadable or does not fit the model; the
      message lists the offending variable names (`convert.ConversionError`
      for TF1 checkpoints). `pretrainer`'s weights are then undefined.
  """
  prefix, fmt = checkpoint_format(
      checkpoint_path, flag=flag or "--model_checkpoint_path", log=log)
  variables = _model_variables(pretrainer)
  for variable in variables:  # Sentinel: anything not restored stays NaN.
    if variable.dtype.is_floating:
      variable.assign(tf.fill(variable.shape, float("nan")))
  if fmt == "tf1":
    # Imported here: `convert` imports this module (`resolve_prefix`).
    from checkpoints import convert  # pylint: disable=g-import-not-at-top
    # Converted by the converter's code (strict accounting, bit-exact
    # read-back) into a temporary TF2 checkpoint, then restored like any.
    with tempfile.TemporaryDirectory(prefix="mobilebert_tf1_") as tmp_dir:
      # The TF1 names do not depend on QAT, which the original does not save.
      summary = convert.convert(
          config.replace(use_quantized_training=False), prefix,
          os.path.join(tmp_dir, "converted"),
          with_nsp="next_sentence" in pretrainer.checkpoint_items, log=log)
      _restore_tf2(pretrainer, summary.tf2_checkpoint_path)
  else:
    _restore_tf2(pretrainer, prefix)
  not_restored = [v.name for v in variables if v.dtype.is_floating
                  and not np.isfinite(v.numpy()).all()]
  if not_restored:
    raise ValueError(
        f"{len(not_restored)} model variables were not restored from "
        f"{prefix} (or hold NaN/inf there): {_list_names(not_restored)}.")
  return fmt
