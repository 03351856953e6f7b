r"""Converts an original TF1 MobileBERT checkpoint into a TF2 object-based one.

Reads a name-based checkpoint written by google-research `mobilebert` (TF1):
Google's released `mobilebert_variables.ckpt`, the tiny, multilingual and
IB-BERT teacher checkpoints, or any checkpoint of that code (`bert/...`
encoder and pooler, `cls/predictions/...` MLM head, `cls/seq_relationship/...`
NSP head, optimizer slots, `global_step`). Writes exactly `OUT.index` and
`OUT.data-*`, which restore with

  pretrainer = model_utils.create_mobilebert_pretrainer(bert_config)
  tf.train.Checkpoint(**pretrainer.checkpoint_items).restore(
      OUT).assert_existing_objects_matched()

here and in tf-models-official's MobileBERT pretrainer. Unlike
tf-models-official's converter, the NSP head is kept (as `next_sentence`,
restored by `build_pretrainer(config, with_nsp=True)`), so a converted model
reproduces the original NSP logits.

Strict accounting (names come from `checkpoints.name_map`, never from
substring rules):
  * every TF1 variable maps to exactly one Keras variable, or is dropped as an
    optimizer slot / `global_step` (or as the NSP head with `--nowith_nsp`);
    anything else is an error listing the names (a warning with
    `--allow_unmapped`);
  * every Keras variable of the model is filled;
  * all shapes are checked against the config before anything is built or
    written;
  * the written checkpoint is read back into the model and every tensor is
    compared with its TF1 source bit for bit (after the reshapes and the NSP
    transpose documented in `name_map`).

The output appears only when complete: it is written into a temporary
directory beside the target (`mobilebert_tf.files.staged_prefix`: a crashed
run's is removed by the next) and renamed into place, the index last.

Usage:

  python -m checkpoints.convert \
    --bert_config_file=mobilebert_tf/presets/uncased_L-24_H-128_B-512_A-4_F-4_OPT.json \
    --tf1_checkpoint_path=mobilebert/mobilebert_variables.ckpt \
    --tf2_checkpoint_path=converted/mobilebert

Flags follow tf-models-official's
`official/projects/mobilebert/tf2_model_checkpoint_converter.py`, plus
`--overwrite`, `--allow_unmapped` and `--[no]with_nsp`. Exit codes: 0 done,
2 bad input (one line on stderr, nothing written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import collections
import dataclasses
import re
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

from checkpoints import name_map
from checkpoints import restore
from mobilebert_tf import cli
from mobilebert_tf import files
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.config import load_config
from mobilebert_tf.pretrainer import build_pretrainer

_PROGRAM = "python -m checkpoints.convert"

_LAYER = re.compile(r"^bert/encoder/layer_(\d+)/")
_FFN = re.compile(r"^bert/encoder/layer_0/ffn_layer_(\d+)/")
_NSP_SCOPE = "cls/seq_relationship/"
# Names shown in a one-line error before "... and N more".
_MAX_NAMES = 8


class ConversionError(ValueError):
  """An expected problem with the inputs (exit code 2 in the CLI)."""


@dataclasses.dataclass
class ConversionSummary:
  """What `convert` did.

  Attributes:
    tf1_checkpoint_path: str. The TF1 prefix read.
    tf2_checkpoint_path: str. The prefix written.
    converted: int. TF1 variables written to the TF2 checkpoint.
    dropped: dict. Kind (`adam_m`, `adam_v`, `global_step`, ...) -> number of
      TF1 variables not converted.
    unmapped: list of str. TF1 variables with no mapping (only with
      `allow_unmapped`; they are also counted in `dropped`).
    parameters: int. Scalars in the converted model.
    parameters_by_part: dict. `encoder`, `masked_lm` (without the tied
      embedding table), `next_sentence` -> scalars.
    with_nsp: bool. Whether the NSP head was converted.
    verified: int. Tensors read back and compared bit for bit.
    output_files: list of str. The files written.
    seconds: float. Wall time.
  """

  tf1_checkpoint_path: str
  tf2_checkpoint_path: str
  converted: int
  dropped: Dict[str, int]
  unmapped: List[str]
  parameters: int
  parameters_by_part: Dict[str, int]
  with_nsp: bool
  verified: int
  output_files: List[str]
  seconds: float

  def format(self) -> str:
    """A one-screen, human-readable summary."""
    dropped = sum(self.dropped.values())
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in self.dropped.items())
    parts = ", ".join(f"{part} {n:,}"
                      for part, n in self.parameters_by_part.items())
    size = sum(os.path.getsize(f) for f in self.output_files
               if os.path.exists(f))
    lines = [
        "Conversion summary",
        f"  TF1 checkpoint:  {self.tf1_checkpoint_path}",
        f"  TF2 checkpoint:  {self.tf2_checkpoint_path}",
        f"  converted:       {self.converted:,} variables "
        f"(NSP head {'included' if self.with_nsp else 'not included'})",
        f"  dropped:         {dropped:,}" + (f" ({kinds})" if kinds else ""),
        f"  parameters:      {self.parameters:,} ({parts})",
        f"  verified:        {self.verified:,} tensors equal their TF1 "
        "source bit for bit",
        "  output files:    " + ", ".join(
            os.path.basename(f) for f in self.output_files) +
        f" ({size / 2**20:.1f} MiB)",
        f"  time:            {self.seconds:.1f} s",
    ]
    if self.unmapped:
      lines.insert(6, f"  unmapped:        {len(self.unmapped)} ignored "
                   f"(--allow_unmapped): {_names(self.unmapped)}")
    return "\n".join(lines)


def _names(names: Sequence[str]) -> str:
  names = list(names)
  shown = ", ".join(names[:_MAX_NAMES])
  if len(names) > _MAX_NAMES:
    shown += f" ... and {len(names) - _MAX_NAMES} more"
  return shown


# === Input checkpoint ===


def _open_tf1_checkpoint(prefix: str):
  """A checkpoint reader with its name -> shape and name -> dtype maps."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
  except (tf.errors.OpError, ValueError, IndexError, OSError) as e:
    raise ConversionError(
        f"Cannot read the TF1 checkpoint {prefix}: {cli.first_line(e)}. The "
        "files may be truncated or corrupted; copy or download them "
        "again.") from None
  if not shapes:
    raise ConversionError(
        f"The checkpoint {prefix} holds no variables. Pass the prefix of a "
        "MobileBERT TF1 checkpoint (PREFIX.index, PREFIX.data-*).")
  object_based = sorted(
      n for n in shapes if n == "_CHECKPOINTABLE_OBJECT_GRAPH" or
      "/.ATTRIBUTES/" in n)
  if object_based:
    raise ConversionError(
        f"{prefix} is a TF2 object-based checkpoint (it has "
        f"{object_based[0]}), not an original TF1 name-based one: it needs no "
        "conversion. Restore it with tf.train.Checkpoint("
        "**pretrainer.checkpoint_items).restore(PREFIX).")
  return reader, {n: tuple(s) for n, s in shapes.items()}, dtypes


def _drop_kind(tf1_name: str) -> str:
  """The kind of an optimizer variable, for the summary: `adam_m`, ..."""
  for part in reversed(tf1_name.split("/")):
    if name_map.is_optimizer_variable(part):
      return re.sub(r"_\d+$", "", part) if part not in (
          "adam_m", "adam_v") else part
  return "optimizer"


def _layout_hints(config: MobileBertConfig, shapes) -> List[str]:
  """Config fields that visibly disagree with the checkpoint.

  Args:
    config: the model configuration.
    shapes: the checkpoint's {name: shape}.
  """
  hints = []
  layers = {int(m.group(1)) for m in map(_LAYER.match, shapes) if m}
  if layers and len(layers) != config.num_hidden_layers:
    hints.append(f"the checkpoint has {len(layers)} transformer layers "
                 f"(bert/encoder/layer_N), the config num_hidden_layers="
                 f"{config.num_hidden_layers}")
  if layers:
    ffns = {int(m.group(1)) for m in map(_FFN.match, shapes) if m}
    n_ffn = max(ffns) + 2 if ffns else 1
    if n_ffn != config.num_feedforward_networks:
      hints.append(f"the checkpoint has {n_ffn} feed-forward networks per "
                   "layer, the config num_feedforward_networks="
                   f"{config.num_feedforward_networks}")
  norms = {n.rsplit("/", 2)[-2] for n in shapes
           if n.startswith("bert/embeddings/") and n.endswith("/gamma")}
  expected = "FakeLayerNorm" if config.normalization_type == "no_norm" else (
      "LayerNorm")
  if norms and expected not in norms:
    hints.append(f"the checkpoint's normalization is {sorted(norms)[0]}, the "
                 f"config normalization_type={config.normalization_type!r}")
  if layers:
    has_bottleneck = "bert/encoder/layer_0/bottleneck/input/dense/kernel" in (
        shapes)
    has_kq = "bert/encoder/layer_0/bottleneck/attention/dense/kernel" in shapes
    if has_bottleneck != config.use_bottleneck:
      hints.append(f"the checkpoint has {'' if has_bottleneck else 'no '}"
                   "bottlenecks (bert/encoder/layer_N/bottleneck), the config "
                   f"use_bottleneck={str(config.use_bottleneck).lower()}")
    elif has_bottleneck and has_kq != (config.key_query_shared_bottleneck and
                                       not config.use_bottleneck_attention):
      hints.append(
          f"the checkpoint has {'a' if has_kq else 'no'} key/query-shared "
          "bottleneck (bottleneck/attention), the config "
          "key_query_shared_bottleneck="
          f"{str(config.key_query_shared_bottleneck).lower()}, "
          "use_bottleneck_attention="
          f"{str(config.use_bottleneck_attention).lower()}")
  projection = shapes.get("bert/embeddings/embedding_transformation/kernel")
  words = shapes.get("bert/embeddings/word_embeddings")
  if projection and words and len(projection) == 2 and len(words) == 2:
    trigram = projection[0] == 3 * words[1]
    if trigram != config.trigram_input:
      hints.append(f"the checkpoint's embedding_transformation "
                   f"{tuple(projection)} implies trigram_input="
                   f"{str(trigram).lower()}, the config "
                   f"trigram_input={str(config.trigram_input).lower()}")
  if not any(n.startswith("bert/") for n in shapes):
    hints.append("the checkpoint has no bert/ variables, so it is not an "
                 "original MobileBERT TF1 checkpoint")
  if "bert/pooler/dense/kernel" in shapes and not config.classifier_activation:
    hints.append("the checkpoint has a pooler (bert/pooler/dense), the config "
                 "classifier_activation=false")
  return hints


# Tables whose shape is one or two config fields.
_TABLE_FIELDS = {
    "bert/embeddings/word_embeddings": ("vocab_size", "embedding_size"),
    "bert/embeddings/token_type_embeddings": ("type_vocab_size",
                                              "hidden_size"),
    "bert/embeddings/position_embeddings": ("max_position_embeddings",
                                            "hidden_size"),
}


def _shape_hints(config: MobileBertConfig, name: str, shape) -> List[str]:
  fields = _TABLE_FIELDS.get(name)
  if not fields or len(shape) != len(fields):
    return []
  return [f"the checkpoint's {name} implies " + ", ".join(
      f"{field}={size}" for field, size in zip(fields, shape)) +
          ", the config has " + ", ".join(
              f"{field}={getattr(config, field)}" for field in fields)]


def _hint_text(hints: List[str]) -> str:
  if not hints:
    return " Does --bert_config_file match the checkpoint?"
  text = "; ".join(hints)
  return (" Does --bert_config_file match the checkpoint? " + text[0].upper() +
          text[1:] + ".")


# === Output ===


def _check_output(prefix: str, tf1_prefix: str, overwrite: bool) -> None:
  if not prefix or prefix.endswith(os.sep) or os.path.isdir(prefix):
    raise ConversionError(
        f"--tf2_checkpoint_path must be a file prefix such as DIR/mobilebert "
        f"(the files are PREFIX.index and PREFIX.data-*). Received: "
        f"{prefix!r}, a directory.")
  if os.path.abspath(prefix) == os.path.abspath(tf1_prefix):
    raise ConversionError(
        f"--tf2_checkpoint_path ({prefix}) is the TF1 checkpoint itself; "
        "choose another prefix.")
  existing = files.checkpoint_files(prefix)
  if existing and not overwrite:
    raise FileExistsError(
        f"{existing[0]} already exists; pass --overwrite to replace the "
        "checkpoint, or choose another --tf2_checkpoint_path.")
  parent = os.path.dirname(os.path.abspath(prefix))
  if os.path.exists(parent) and not os.path.isdir(parent):
    raise ConversionError(
        f"Cannot write {prefix}: {parent} is a file, not a directory.")


# === Conversion ===


def _group(tf1_name: str) -> str:
  match = _LAYER.match(tf1_name)
  if match:
    return f"layer {int(match.group(1))}"
  return "embeddings" if tf1_name.startswith("bert/embeddings/") else "heads"


def _count_parameters(items) -> Dict[str, int]:
  seen, counts = set(), collections.OrderedDict()
  for part, layer in items.items():
    counts[part] = 0
    for variable in layer.weights:
      if variable.ref() not in seen:
        seen.add(variable.ref())
        counts[part] += int(np.prod(variable.shape))
  return counts


def convert(config: Union[MobileBertConfig, str],
            tf1_checkpoint_path: str,
            tf2_checkpoint_path: str,
            overwrite: bool = False,
            allow_unmapped: bool = False,
            with_nsp: Optional[bool] = None,
            log: Callable[[str], None] = logging.info) -> ConversionSummary:
  """Converts a TF1 MobileBERT checkpoint; see the module docstring.

  Args:
    config: a `MobileBertConfig`, a preset name or the path of a
      `bert_config.json` (see `mobilebert_tf.config.load_config`).
    tf1_checkpoint_path: str. The TF1 checkpoint prefix (one of its files or
      its directory are accepted too).
    tf2_checkpoint_path: str. The output prefix: writes exactly
      `PREFIX.index` and `PREFIX.data-*`.
    overwrite: bool. Replace an existing checkpoint at the output prefix.
      Defaults to False.
    allow_unmapped: bool. Warn about TF1 variables that have no mapping
      (other than optimizer slots) instead of failing. Defaults to False.
    with_nsp: bool or None. Convert the next-sentence head
      (`cls/seq_relationship`). None: if the checkpoint has it. Defaults to
      None.
    log: callable taking one progress line. Defaults to absl `logging.info`.

  Returns:
    A `ConversionSummary`.

  Raises:
    FileNotFoundError: the checkpoint or config file does not exist.
    FileExistsError: the output exists and `overwrite` is False.
    ConversionError: a `ValueError` for unreadable, corrupted or TF2 input,
      a config that does not fit the checkpoint, or unmapped variables.
  """
  start = time.time()
  if not isinstance(config, MobileBertConfig):
    config = load_config(config)
  tf1_prefix = restore.resolve_prefix(tf1_checkpoint_path,
                                      flag="--tf1_checkpoint_path", log=log)
  tf2_prefix = os.fspath(tf2_checkpoint_path)
  _check_output(tf2_prefix, tf1_prefix, overwrite)

  reader, shapes, dtypes = _open_tf1_checkpoint(tf1_prefix)
  has_nsp = any(n.startswith(_NSP_SCOPE) for n in shapes)
  if with_nsp is None:
    with_nsp = has_nsp
  table = name_map.tf1_to_keras(config, with_nsp=with_nsp)
  log(f"Reading {tf1_prefix}: {len(shapes):,} variables; the model has "
      f"{len(table):,} ({config.num_hidden_layers} transformer "
      f"layer{'s' if config.num_hidden_layers > 1 else ''}, NSP head "
      f"{'included' if with_nsp else 'not included'})")

  # Account for every TF1 variable before touching the model.
  dropped = collections.Counter()
  unmapped = []
  for name in sorted(shapes):
    if name in table:
      continue
    if name_map.is_optimizer_variable(name):
      dropped[_drop_kind(name)] += 1
    elif name.startswith(_NSP_SCOPE) and not with_nsp:
      dropped["NSP head (--nowith_nsp)"] += 1
    else:
      unmapped.append(name)
  missing = [name for name in table if name not in shapes]
  if missing:
    hints = _layout_hints(config, shapes)
    if all(n.startswith(_NSP_SCOPE) for n in missing):
      hints.append("the checkpoint has no NSP head (cls/seq_relationship); "
                   "pass --nowith_nsp")
    raise ConversionError(
        f"The checkpoint lacks {len(missing)} of the model's "
        f"{len(table)} variables: {_names(missing)}.{_hint_text(hints)}")
  if unmapped:
    if not allow_unmapped:
      raise ConversionError(
          f"{len(unmapped)} TF1 variables have no mapping: "
          f"{_names(unmapped)}.{_hint_text(_layout_hints(config, shapes))} "
          "Pass --allow_unmapped to ignore them.")
    logging.warning("Ignoring %d TF1 variables that have no mapping "
                    "(--allow_unmapped): %s", len(unmapped), _names(unmapped))
    dropped["unmapped (--allow_unmapped)"] += len(unmapped)
  for name, entry in table.items():
    if shapes[name] != entry.tf1_shape:
      raise ConversionError(
          f"Shape mismatch for {entry.keras_path} (from {name}): checkpoint "
          f"{shapes[name]} vs model {entry.tf1_shape}." + _hint_text(
              _shape_hints(config, name, shapes[name]) +
              _layout_hints(config, shapes)))
    dtype = dtypes[name]
    if not dtype.is_floating:
      raise ConversionError(
          f"{name} has dtype {dtype.name}; MobileBERT weights are floating "
          "point. Is this a MobileBERT checkpoint?")

  # Read and transform everything before building anything.
  values = collections.OrderedDict()  # TF1 name -> array, TF1 layout
  groups = collections.OrderedDict()
  for name in table:
    groups.setdefault(_group(name), []).append(name)
  def read(name):
    try:
      return np.asarray(reader.get_tensor(name))
    except (tf.errors.OpError, ValueError, IndexError, OSError) as e:
      raise ConversionError(
          f"Cannot read {name} from the TF1 checkpoint {tf1_prefix}: "
          f"{cli.first_line(e)}. The files may be truncated or corrupted; "
          "copy or download them again.") from None

  for number, (group, names) in enumerate(groups.items(), 1):
    for name in names:
      values[name] = read(name)
    scalars = sum(values[n].size for n in names)
    log(f"  [{number:>2}/{len(groups)}] {group}: {len(names)} variables, "
        f"{scalars:,} parameters")
  # Dropped tensors are read too (and thrown away): a truncated or corrupted
  # file is caught even where it only holds optimizer slots.
  for name in shapes:
    if name not in table:
      read(name)

  log("Building the Keras pretrainer")
  pretrainer = build_pretrainer(config, with_nsp=with_nsp)
  items = pretrainer.checkpoint_items
  targets = collections.OrderedDict(
      (name, name_map.resolve(items, entry.keras_path))
      for name, entry in table.items())
  filled = {v.ref() for v in targets.values()}
  if len(filled) != len(targets):
    raise RuntimeError("Internal error: checkpoints.name_map maps two TF1 "
                       "variables to one Keras variable.")
  for part, layer in items.items():
    for variable in layer.weights:
      if variable.ref() not in filled:
        raise RuntimeError(
            f"Internal error: no TF1 variable fills the model variable "
            f"{variable.name} (of {part}); checkpoints.name_map has no entry "
            "for it.")

  expected = collections.OrderedDict()  # TF1 name -> Keras-layout value
  for name, entry in table.items():
    variable = targets[name]
    dtype = variable.dtype.as_numpy_dtype
    value = np.ascontiguousarray(name_map.to_keras_value(
        values.pop(name).astype(dtype, copy=False), entry,
        tuple(variable.shape)))
    if value.shape != tuple(variable.shape):
      raise RuntimeError(
          f"Internal error: {name} becomes {value.shape}, but "
          f"{entry.keras_path} is {tuple(variable.shape)}.")
    variable.assign(value)
    expected[name] = value

  # Write beside the target; read back and compare before moving into place.
  parent = os.path.dirname(os.path.abspath(tf2_prefix))
  created_parent = not os.path.isdir(parent)
  try:
    with files.staged_prefix(tf2_prefix, overwrite=overwrite) as tmp_prefix:
      checkpoint = tf.train.Checkpoint(**items)
      # With `save_counter` (as `Checkpoint.save` writes it), so that
      # `Checkpoint(...).restore(OUT).assert_consumed()` and
      # `assert_existing_objects_matched()` hold; `write` alone leaves it out.
      _ = checkpoint.save_counter
      checkpoint.write(tmp_prefix)
      log("Wrote the TF2 checkpoint; reading it back to compare with the "
          "TF1 tensors")
      verified = _verify(items, tmp_prefix, targets, expected)
  finally:
    if created_parent and os.path.isdir(parent) and not os.listdir(parent):
      os.rmdir(parent)  # Failed: leave no trace.
  output_files = files.checkpoint_files(tf2_prefix)

  by_part = _count_parameters(items)
  return ConversionSummary(
      tf1_checkpoint_path=tf1_prefix,
      tf2_checkpoint_path=tf2_prefix,
      converted=len(table),
      dropped=dict(sorted(dropped.items())),
      unmapped=unmapped,
      parameters=sum(by_part.values()),
      parameters_by_part=dict(by_part),
      with_nsp=with_nsp,
      verified=verified,
      output_files=output_files,
      seconds=time.time() - start)


def _verify(items, prefix, targets, expected) -> int:
  """Restores `prefix` into the model and compares with the TF1 values.

  The variables are first overwritten with NaN, so a variable the file does
  not restore cannot pass.
  """
  for variable in targets.values():
    variable.assign(np.full(variable.shape, np.nan,
                            variable.dtype.as_numpy_dtype))
  tf.train.Checkpoint(**items).restore(prefix).assert_consumed()
  stored = [n for n, _ in tf.train.list_variables(prefix)
            if n.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and
            not n.startswith("save_counter/")]
  if len(stored) != len(targets):
    raise RuntimeError(f"Verification failed: {prefix} holds {len(stored)} "
                       f"variables, the model {len(targets)}.")
  for name, variable in targets.items():
    restored = variable.numpy()
    if (restored.dtype != expected[name].dtype or
        restored.shape != expected[name].shape or
        restored.tobytes() != expected[name].tobytes()):
      raise RuntimeError(f"Verification failed: {variable.name} restored "
                         f"from {prefix} differs from {name}.")
  return len(targets)


# === Command line ===


def _define_flags() -> flags.FlagValues:
  # A fresh FlagValues per call: no clash with other modules' flags (also
  # tf-models-official's converter, which defines the same names globally),
  # and no values left over between in-process calls of `main`.
  values = flags.FlagValues()
  flags.DEFINE_string(
      "bert_config_file", None,
      "The model's bert_config.json (original keys), or a preset name, e.g. "
      "uncased_L-24_H-128_B-512_A-4_F-4_OPT.",
      flag_values=values)
  flags.DEFINE_string(
      "tf1_checkpoint_path", None,
      "Prefix of the TF1 checkpoint to read, e.g. "
      "DIR/mobilebert_variables.ckpt (one of its files is accepted too).",
      flag_values=values)
  flags.DEFINE_string(
      "tf2_checkpoint_path", None,
      "Prefix to write: PREFIX.index and PREFIX.data-* appear there.",
      flag_values=values)
  flags.DEFINE_boolean(
      "overwrite", False,
      "Replace an existing checkpoint at --tf2_checkpoint_path.",
      flag_values=values)
  flags.DEFINE_boolean(
      "allow_unmapped", False,
      "Warn about TF1 variables that have no mapping instead of failing.",
      flag_values=values)
  flags.DEFINE_boolean(
      "with_nsp", None,
      "Convert the next-sentence head (cls/seq_relationship). Default: if "
      "the checkpoint has it.", flag_values=values)
  return values


def _usage(values: flags.FlagValues) -> str:
  return (f"Usage: {_PROGRAM} --bert_config_file=CONFIG.json "
          "--tf1_checkpoint_path=TF1_PREFIX --tf2_checkpoint_path=OUT_PREFIX "
          "[--overwrite] [--allow_unmapped] [--[no]with_nsp]\n\n"
          "Converts an original TF1 MobileBERT checkpoint into a TF2 "
          "object-based checkpoint for\nmobilebert_tf and "
          "tf-models-official.\n\nFlags:\n" + values.get_help())


def _error(message: str) -> int:
  return cli.error(_PROGRAM, message)


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name).

  Returns:
    The exit code: 0 done, 2 bad input (one line on stderr).
  """
  values = _define_flags()
  if cli.wants_help(argv):
    print(_usage(values))
    return 0
  try:
    cli.parse(values, argv, required=(
        "bert_config_file", "tf1_checkpoint_path", "tf2_checkpoint_path"))
  except cli.UsageError as e:
    return _error(str(e))

  def progress(line):
    print(line, flush=True)

  try:
    config = load_config(values.bert_config_file)
  except (OSError, ValueError, TypeError) as e:
    return _error(f"--bert_config_file: {e}")
  try:
    summary = convert(config, values.tf1_checkpoint_path,
                      values.tf2_checkpoint_path,
                      overwrite=values.overwrite,
                      allow_unmapped=values.allow_unmapped,
                      with_nsp=values.with_nsp,
                      log=progress)
  except (FileNotFoundError, FileExistsError, ConversionError) as e:
    return _error(str(e))
  print(summary.format(), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
