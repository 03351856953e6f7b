"""The whole export: checkpoint -> verified encoder + preprocessor SavedModels.

`export_all` (or `prepare_export`, then `write_export`) validates the inputs,
builds the pretrainer, restores the checkpoint strictly
(`checkpoints.restore.load_checkpoint`: TF2 checkpoints of
`pretrainer.checkpoint_items`, ours or tf-models-official's, and original TF1
checkpoints, converted on the fly), writes both SavedModels into a temporary
directory beside the target (`export.encoder_savedmodel`,
`export.preprocessor_savedmodel`), reloads and verifies them against the
in-memory model (`export.verify`), and renames into place. Nothing is
written before every input is checked, and nothing is left behind on
failure. `python -m export.to_savedmodel` is its command line.

Example:

>>> report = export_all(config, "model.ckpt", "vocab.txt", do_lower_case=True,
...                     export_path="/tmp/mobilebert_hub")
>>> print(report.format())
"""

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import numpy as np

from checkpoints import restore
from export import encoder_savedmodel
from export import preprocessor_savedmodel
from export import verify as export_verify
from mobilebert_tf import files
from mobilebert_tf import preprocessing
from mobilebert_tf.config import MobileBertConfig
from mobilebert_tf.pretrainer import build_pretrainer

# The parts of an export, each a SavedModel directory under `export_path`.
PARTS = ("encoder", "preprocessor")


@dataclasses.dataclass
class ExportReport:
  """What `export_all` wrote and measured.

  Attributes:
    export_path: the directory holding `encoder/` and `preprocessor/`.
    checkpoint_format: "tf1" or "tf2".
    num_parameters: {"encoder": n, "mlm_head": n}: encoder parameters, and
      those the `.mlm` head adds.
    verification: the `export.verify.Verification` of the written
      SavedModels (only `sizes` without verification).
    seconds: wall time of the export.
  """
  export_path: str
  checkpoint_format: str = ""
  num_parameters: Dict[str, int] = dataclasses.field(default_factory=dict)
  verification: export_verify.Verification = dataclasses.field(
      default_factory=export_verify.Verification)
  seconds: float = 0.0

  def format(self, with_predictions: bool = True) -> str:
    """A short human-readable report (predictions optional)."""
    mib = lambda n: f"{n / 2**20:.1f} MiB"
    checked = self.verification
    lines = [f"Exported to {self.export_path} in {self.seconds:.1f} s "
             f"(checkpoint: {self.checkpoint_format})"]
    for part in PARTS:
      if part in checked.sizes:
        callables = checked.callables.get(part)
        lines.append(f"  {part}/: {mib(checked.sizes[part])}" + (
            f", callables: {', '.join(callables)}" if callables else ""))
      for name, (ins, outs) in sorted(
          checked.signatures.get(part, {}).items()):
        lines.append(f"    signature {name}: ({', '.join(ins)}) -> "
                     f"({', '.join(outs)})")
    if self.num_parameters:
      lines.append("  parameters: " + ", ".join(
          f"{k} {v:,}" for k, v in self.num_parameters.items()))
    if checked.output_shapes:
      lines.append("  encoder outputs on the probe batch: " + ", ".join(
          f"{k} {list(v)}" for k, v in checked.output_shapes.items()))
    if checked.max_relative_error:
      worst = max(checked.max_relative_error.values())
      lines.append(f"  reloaded vs in-memory: max relative error {worst:.2e} "
                   f"(tolerance {export_verify.VERIFY_TOLERANCE:.0e}) over "
                   f"{', '.join(checked.max_relative_error)}")
    for sentence, masks in (checked.predictions if with_predictions else []):
      shown = "; ".join(" ".join(tokens) for tokens in masks)
      lines.append(f"  {sentence!r} -> [MASK] top-{len(masks[0])}: {shown}")
    return "\n".join(lines)


@dataclasses.dataclass
class PreparedExport:
  """The validated inputs of an export (see `prepare_export`).

  Attributes:
    config: the model configuration.
    pretrainer: the model with the checkpoint restored.
    vocab: the vocabulary's tokens.
    vocab_file: str. Path of the vocabulary.
    do_lower_case: bool.
    checkpoint_format: "tf1" or "tf2".
    warnings: list of str. Suspicious but allowed inputs (e.g. an uncased
      vocabulary with `do_lower_case=False`).
  """
  config: MobileBertConfig
  pretrainer: object
  vocab: List[str]
  vocab_file: str
  do_lower_case: bool
  checkpoint_format: str
  warnings: List[str] = dataclasses.field(default_factory=list)


def case_warning(vocab: Sequence[str], do_lower_case: bool) -> Optional[str]:
  """A warning when `do_lower_case` looks wrong for the vocabulary, else None.

  Lower-cased input can never produce a token with an upper-case letter, and
  cased input would mostly miss an all-lower-case vocabulary.
  """
  upper = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))
           and t != t.lower()]
  if do_lower_case and len(upper) > max(10, len(vocab) // 100):
    return (f"do_lower_case is true but {len(upper)} vocabulary tokens have "
            f"upper-case letters (e.g. {', '.join(upper[:3])}): a cased "
            "model? Those tokens are unreachable.")
  if not do_lower_case and not upper:
    return ("do_lower_case is false but the vocabulary has no upper-case "
            "tokens: an uncased model? Capitalized words will map to [UNK] "
            "or word pieces.")
  return None


def _check_seq_length(seq_length, config: MobileBertConfig) -> None:
  if isinstance(seq_length, bool) or not isinstance(seq_length, int) or not (
      3 <= seq_length <= config.max_position_embeddings):
    raise ValueError(
        "`seq_length` must be an int in [3, max_position_embeddings="
        f"{config.max_position_embeddings}]. Received: seq_length="
        f"{seq_length!r}")


def prepare_export(config: MobileBertConfig, checkpoint_path: str,
                   vocab_file: str, do_lower_case: bool, export_path: str,
                   seq_length: int = 128, overwrite: bool = False,
                   log: Callable[[str], None] = logging.info
                   ) -> PreparedExport:
  """Checks every input and restores the model; writes nothing.

  Args: as `export_all`.

  Returns:
    A `PreparedExport` for `write_export`.

  Raises:
    TypeError: `config` is not a `MobileBertConfig`.
    FileNotFoundError: a missing vocab file or checkpoint.
    FileExistsError: `export_path` exists and `overwrite` is False.
    ValueError: a vocabulary or checkpoint that does not fit the config, or
      a bad `seq_length`.
  """
  if not isinstance(config, MobileBertConfig):
    raise TypeError("`config` must be a MobileBertConfig. Received: "
                    f"{type(config).__name__}")
  _check_seq_length(seq_length, config)
  files.check_target(export_path, overwrite)
  vocab = preprocessing.check_vocab(vocab_file, config)
  prefix, fmt = restore.checkpoint_format(checkpoint_path, log=log)
  log(f"Restoring {'and converting the TF1 ' if fmt == 'tf1' else 'the TF2 '}"
      f"checkpoint {prefix} ({config.num_hidden_layers} blocks, vocab "
      f"{len(vocab):,})")
  # The layout exports and converters trace (the default, "standard").
  pretrainer = build_pretrainer(config)
  fmt = restore.load_checkpoint(pretrainer, config, prefix)
  warning = case_warning(vocab, do_lower_case)
  return PreparedExport(config=config, pretrainer=pretrainer, vocab=vocab,
                        vocab_file=vocab_file,
                        do_lower_case=bool(do_lower_case),
                        checkpoint_format=fmt,
                        warnings=[warning] if warning else [])


def _count(variables) -> int:
  return int(sum(np.prod(v.shape) for v in variables))


def write_export(prepared: PreparedExport, export_path: str,
                 seq_length: int = 128, overwrite: bool = False,
                 verify: bool = True,
                 sentences: Sequence[str] = export_verify.PROBE_SENTENCES,
                 log: Callable[[str], None] = logging.info) -> ExportReport:
  """Writes, verifies and renames into place the two SavedModels.

  Args: as `export_all`; `prepared` from `prepare_export`.

  Returns:
    An `ExportReport`.

  Raises:
    FileExistsError: `export_path` exists and `overwrite` is False.
    VerificationError: the reloaded SavedModels differ from the model.
  """
  start = time.time()
  pretrainer = prepared.pretrainer
  export_path = files.check_target(export_path, overwrite)
  report = ExportReport(export_path=export_path,
                        checkpoint_format=prepared.checkpoint_format)
  encoder_params = _count(pretrainer.encoder_network.trainable_variables)
  all_params = _count({v.ref(): v for obj in
                       pretrainer.checkpoint_items.values()
                       for v in obj.variables}.values())
  report.num_parameters = {"encoder": encoder_params,
                           "mlm_head": all_params - encoder_params}
  with files.staged_directory(export_path, overwrite) as tmp_export:
    log(f"Writing the encoder SavedModel (with .mlm) into {tmp_export}")
    encoder_savedmodel.export_encoder(
        pretrainer, prepared.vocab_file, prepared.do_lower_case,
        os.path.join(tmp_export, "encoder"), config=prepared.config)
    log("Writing the preprocessor SavedModel")
    preprocessor_savedmodel.export_preprocessor(
        prepared.vocab_file, prepared.do_lower_case,
        os.path.join(tmp_export, "preprocessor"), seq_length=seq_length)
    if verify:
      log("Reloading both with tensorflow_hub and comparing with the model")
      report.verification = export_verify.verify_export(
          tmp_export, pretrainer, prepared.vocab, seq_length,
          sentences=sentences, config=prepared.config)
    else:
      report.verification.sizes = {
          part: export_verify.dir_size(os.path.join(tmp_export, part))
          for part in PARTS}
  report.seconds = time.time() - start
  return report


def export_all(config: MobileBertConfig, checkpoint_path: str,
               vocab_file: str, do_lower_case: bool, export_path: str,
               seq_length: int = 128, overwrite: bool = False,
               verify: bool = True,
               sentences: Sequence[str] = export_verify.PROBE_SENTENCES,
               log: Callable[[str], None] = logging.info) -> ExportReport:
  """Exports `export_path/encoder` and `export_path/preprocessor`, verified.

  Steps (`prepare_export`, then `write_export`): check the vocabulary against
  the config; build the pretrainer and restore the checkpoint strictly, all
  before anything is written; write both SavedModels into a temporary
  directory beside `export_path`; reload and verify them
  (`export.verify.verify_export`); rename into place.

  Args:
    config: the model configuration.
    checkpoint_path: str. TF2 or original TF1 checkpoint (prefix, one of its
      files, or its directory).
    vocab_file: str. WordPiece vocabulary of `config.vocab_size` tokens with
      `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    do_lower_case: bool. True for uncased vocabularies.
    export_path: str. Target directory; must not exist unless `overwrite`.
      Missing parent directories are created.
    seq_length: int. The preprocessor's default length, in
      [3, max_position_embeddings]. Defaults to 128.
    overwrite: bool. Replace an existing `export_path`. Defaults to False.
    verify: bool. Reload and compare before renaming. Defaults to True.
    sentences: probe sentences for `export.verify.verify_export`.
    log: callable taking one progress line. Defaults to absl `logging.info`.

  Returns:
    An `ExportReport`.

  Raises:
    TypeError: `config` is not a `MobileBertConfig`.
    FileNotFoundError: a missing vocab file or checkpoint.
    FileExistsError: `export_path` exists and `overwrite` is False.
    ValueError: a vocabulary or checkpoint that does not fit the config, or
      a bad `seq_length`.
    VerificationError: the reloaded SavedModels differ from the model.
  """
  start = time.time()
  prepared = prepare_export(config, checkpoint_path, vocab_file,
                            do_lower_case, export_path, seq_length=seq_length,
                            overwrite=overwrite, log=log)
  report = write_export(prepared, export_path, seq_length=seq_length,
                        overwrite=overwrite, verify=verify,
                        sentences=sentences, log=log)
  report.seconds = time.time() - start
  return report
