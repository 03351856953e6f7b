r"""Writes a model as an original-layout TF1 MobileBERT checkpoint.

The reverse of `python -m checkpoints.convert`: reads any checkpoint the
library restores (a TF2 checkpoint of ours or of tf-models-official's
MobileBERT pretrainer, a training run's directory, or a TF1 checkpoint) and
writes the model's weights under the variable names and shapes of
google-research `mobilebert` (`bert/embeddings/...`,
`bert/encoder/layer_N/...`, `cls/predictions/...` and, when the model has
one, `cls/seq_relationship/...`), without optimizer slots, so the original
TF1 code (`run_squad.py`, `run_classifier.py`) and every tool that takes
Google's released checkpoints read it. The names come from
`checkpoints.name_map`, the converter's table.

Usage:

  python -m checkpoints.to_tf1 --bert_config_file=CONFIG.json \
    --checkpoint=RUN_DIR --tf1_checkpoint_path=OUT/model.ckpt [--overwrite]
    [--[no]with_nsp]

The written files are read back and compared with the model's weights bit
for bit before they are renamed into place (`mobilebert_tf.files
.staged_prefix`: `OUT.index` last). Exit codes: 0 done, 2 bad input (one
line on stderr, nothing written).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __name__ == "__main__":  # A command line: see `mobilebert_tf.cli`.
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# pylint: disable=g-import-not-at-top
import sys
from typing import Callable, Optional, Sequence, Union

from absl import flags

from checkpoints import restore
from checkpoints import tf1_io
from mobilebert_tf import cli
from mobilebert_tf import files
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.config import load_config
from mobilebert_tf.pretrainer import build_pretrainer

_PROGRAM = "python -m checkpoints.to_tf1"
# Keys that say a checkpoint has a next-sentence head, per format.
_NSP_KEYS = {"tf2": "next_sentence/", "tf1": "cls/seq_relationship/"}


def has_next_sentence_head(checkpoint_path: str,
                           flag: str = "--checkpoint") -> bool:
  """Whether a checkpoint (TF1 or TF2) holds a next-sentence head."""
  prefix, fmt = restore.checkpoint_format(checkpoint_path, flag=flag,
                                          log=lambda line: None)
  return any(key.startswith(_NSP_KEYS[fmt])
             for key in restore.checkpoint_shapes(prefix))


def to_tf1(config: Union[MobileBertConfig, str], checkpoint_path: str,
           tf1_checkpoint_path: str, with_nsp: Optional[bool] = None,
           overwrite: bool = False,
           log: Callable[[str], None] = print) -> int:
  """Restores `checkpoint_path` and writes it as a TF1 checkpoint.

  Args:
    config: the model's `MobileBertConfig`, a config file or a preset name.
    checkpoint_path: str. Anything `restore.load_checkpoint` accepts.
    tf1_checkpoint_path: str. The prefix to write (`.index`, `.data-*`).
    with_nsp: bool or None. Write the next-sentence head; None: iff the
      checkpoint has one.
    overwrite: bool. Replace an existing checkpoint. Defaults to False.
    log: callable taking one progress line.

  Returns:
    The number of variables written.

  Raises:
    FileExistsError: the target exists and `overwrite` is False.
    FileNotFoundError, ValueError: no checkpoint, or one that does not fit
      `config` (the message names the variables).
    RuntimeError: the written checkpoint differs from the model (nothing is
      renamed into place then).
  """
  if not isinstance(config, MobileBertConfig):
    config = load_config(config)
  existing = files.checkpoint_files(os.path.abspath(tf1_checkpoint_path))
  if existing and not overwrite:  # Before the restore, which takes a while.
    raise FileExistsError(f"{existing[0]} already exists. Pass --overwrite "
                          "to replace the checkpoint.")
  if with_nsp is None:
    with_nsp = has_next_sentence_head(checkpoint_path)
  pretrainer = build_pretrainer(config, with_nsp=with_nsp)
  fmt = restore.load_checkpoint(pretrainer, config, checkpoint_path, log=log,
                                flag="--checkpoint")
  variables = tf1_io.pretrainer_to_tf1_variables(pretrainer, config)
  tf1_io.write_tf1_checkpoint(variables, tf1_checkpoint_path,
                              overwrite=overwrite, verify=True)
  log(f"Wrote {len(variables)} variables of the {fmt.upper()} checkpoint "
      f"{checkpoint_path} as {tf1_checkpoint_path} (TF1 layout"
      f"{', with the next-sentence head' if with_nsp else ''}).")
  return len(variables)


def _define_flags() -> flags.FlagValues:
  values = flags.FlagValues()
  define = dict(flag_values=values)
  flags.DEFINE_string("bert_config_file", None, "The model's "
                      "bert_config.json, or a preset name.", **define)
  flags.DEFINE_string("checkpoint", None, "The checkpoint to read: a "
                      "prefix, one of its files or a training run's "
                      "directory (its latest checkpoint).", **define)
  flags.DEFINE_string("tf1_checkpoint_path", None, "Prefix to write: "
                      "PREFIX.index and PREFIX.data-00000-of-00001.",
                      **define)
  flags.DEFINE_boolean("with_nsp", None, "Write the next-sentence head "
                       "(cls/seq_relationship). Default: if the checkpoint "
                       "has it.", **define)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing checkpoint "
                       "at --tf1_checkpoint_path.", **define)
  return values


def main(argv: Sequence[str]) -> int:
  """Runs the CLI on `argv` (argv[0] is the program name); returns the exit
  code."""
  values = _define_flags()
  if cli.wants_help(argv):
    print(f"Usage: {_PROGRAM} --bert_config_file=CONFIG.json "
          "--checkpoint=PATH --tf1_checkpoint_path=OUT_PREFIX [--overwrite] "
          "[--[no]with_nsp]\n\nWrites a model as an original-layout TF1 "
          "MobileBERT checkpoint.\n\nFlags:\n" + values.get_help())
    return 0
  try:
    cli.parse(values, argv, required=("bert_config_file", "checkpoint",
                                      "tf1_checkpoint_path"))
    to_tf1(values.bert_config_file, values.checkpoint,
           values.tf1_checkpoint_path, with_nsp=values.with_nsp,
           overwrite=values.overwrite,
           log=lambda line: print(line, flush=True))
  except (cli.UsageError, OSError, ValueError) as e:
    return cli.error(_PROGRAM, cli.first_line(e))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
