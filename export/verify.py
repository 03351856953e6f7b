"""Checks a written export against the in-memory model it came from.

`verify_export` reloads both SavedModels the way users do (tensorflow_hub),
runs a fixed probe batch of text through the reloaded preprocessor and
encoder, and compares every output with the in-memory pretrainer: relative
error `‖hub − model‖ / ‖model‖ ≤ VERIFY_TOLERANCE`, `default` equal to
`pooled_output`, the vocab asset equal to the vocabulary. Sentences with
"[MASK]" also probe `.mlm` (packed by `mobilebert_tf.fill_mask`, padded), and
its top-k predictions go into the report.

Example:

>>> result = verify_export("/tmp/hub", pretrainer, vocab, seq_length=128)
>>> result.max_relative_error["sequence_output"] <= VERIFY_TOLERANCE
True
"""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from export import encoder_savedmodel
from mobilebert_tf import fill_mask
from mobilebert_tf import numerics
from mobilebert_tf.config import MobileBertConfig

# Relative error allowed between the reloaded SavedModel and the in-memory
# model (‖hub - model‖ / ‖model‖): float32 rounding of one computation done
# twice, by the same graph (the model as built traces one attention layout
# for both).
VERIFY_TOLERANCE = 1e-5

# The fixed probe batch of `verify_export`: "[MASK]" marks masked-LM probes.
PROBE_SENTENCES = (
    "Return the [MASK] of the list.",
    "Raise a [MASK] if the file does not exist.",
    "The default [MASK] is None.",
    "Create a new [MASK] and return it.",
    "Hello, World! Ça marche très bien.",
)


class VerificationError(RuntimeError):
  """The reloaded SavedModels do not reproduce the in-memory model."""


@dataclasses.dataclass
class Verification:
  """What `verify_export` measured.

  Attributes:
    sizes: {"encoder": bytes, "preprocessor": bytes} on disk.
    signatures: {"encoder": {name: (inputs, outputs)}, "preprocessor": ...}.
    callables: {"encoder": [...], "preprocessor": [...]}: the sub-objects.
    output_shapes: {output name: shape} of the encoder on the probe batch
      (`encoder_outputs`: `(blocks, batch, seq, width)`).
    max_relative_error: {output name: max relative error} hub vs in-memory.
    predictions: [(sentence, [[top-k tokens] per [MASK]])].
  """
  sizes: Dict[str, int] = dataclasses.field(default_factory=dict)
  signatures: Dict[str, Dict[str, Tuple[List[str], List[str]]]] = (
      dataclasses.field(default_factory=dict))
  callables: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
  output_shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(
      default_factory=dict)
  max_relative_error: Dict[str, float] = dataclasses.field(
      default_factory=dict)
  predictions: List[Tuple[str, List[List[str]]]] = dataclasses.field(
      default_factory=list)


def dir_size(path: str) -> int:
  """Bytes of all files under `path`."""
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, names in os.walk(path) for f in names)


def signature_summary(loaded) -> Dict[str, Tuple[List[str], List[str]]]:
  """{signature name: (sorted input names, sorted output names)}."""
  result = {}
  for name, fn in loaded.signatures.items():
    _, kwargs = fn.structured_input_signature
    result[name] = (sorted(kwargs), sorted(fn.structured_outputs))
  return result


def verify_export(export_path: str, pretrainer, vocab: Sequence[str],
                  seq_length: int,
                  sentences: Sequence[str] = PROBE_SENTENCES,
                  top_k: int = 5,
                  config: Optional[MobileBertConfig] = None) -> Verification:
  """Reloads both SavedModels with tensorflow_hub and checks them.

  Runs `sentences` through the reloaded preprocessor (padded to its
  `seq_length`), then through the reloaded encoder (`hub.KerasLayer`), and
  the sentences with "[MASK]" through `.mlm` (`fill_mask.mask_inputs`: every
  row but the longest padded); compares every output with the in-memory
  `pretrainer` (relative error <= `VERIFY_TOLERANCE`); checks
  `default == pooled_output`, the vocab and config assets and the
  preprocessor's vocabulary size.

  Args:
    export_path: str. Directory with `encoder/` and `preprocessor/`.
    pretrainer: the in-memory `MobileBertPretrainer` that was exported.
    vocab: the vocabulary's tokens.
    seq_length: int. The preprocessor's sequence length (for messages).
    sentences: probe sentences; those with "[MASK]" also probe `.mlm`.
    top_k: int. Predictions to report per [MASK]. Defaults to 5.
    config: the exported `MobileBertConfig`: the `bert_config_file` asset
      must equal it. Defaults to the pretrainer's.

  Returns:
    A `Verification` with sizes, signatures, shapes, errors and predictions.

  Raises:
    VerificationError: an output differs or the SavedModel lacks a part.
  """
  import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
  # The preprocessor SavedModel uses tensorflow_text's ops: without this
  # import a fresh process fails with "Op type not registered 'TFText>...'".
  import tensorflow_text  # pylint: disable=g-import-not-at-top,unused-import
  encoder_dir = os.path.join(export_path, "encoder")
  preprocessor_dir = os.path.join(export_path, "preprocessor")
  encoder_layer = hub.KerasLayer(encoder_dir, trainable=True)
  encoder = encoder_layer.resolved_object
  preprocessor = hub.load(preprocessor_dir)
  result = Verification()
  errors = result.max_relative_error

  def compare(name, hub_value, reference):
    error = numerics.relative_error(hub_value, reference)
    errors[name] = max(errors.get(name, 0.0), error)

  # Preprocessor -> encoder (root callable, at the preprocessor's length).
  inputs = {k: v.numpy() for k, v in
            preprocessor(tf.constant(list(sentences))).items()}
  if inputs["input_word_ids"].shape[1] != seq_length:
    raise VerificationError(
        f"The reloaded preprocessor packs to length "
        f"{inputs['input_word_ids'].shape[1]}, not seq_length={seq_length}.")
  hub_out = encoder_layer(inputs, training=False)
  model_out = pretrainer.encoder_network(inputs, training=False)
  for name in ("pooled_output", "sequence_output"):
    compare(name, hub_out[name], model_out[name])
  if len(hub_out["encoder_outputs"]) != len(model_out["encoder_outputs"]):
    raise VerificationError(
        f"The reloaded encoder has {len(hub_out['encoder_outputs'])} "
        f"encoder_outputs; the model has {len(model_out['encoder_outputs'])}.")
  for got, want in zip(hub_out["encoder_outputs"],
                       model_out["encoder_outputs"]):
    compare("encoder_outputs", got, want)
  if not np.array_equal(hub_out["default"], hub_out["pooled_output"]):
    raise VerificationError("`default` differs from `pooled_output`.")
  result.output_shapes = {
      k: tuple(hub_out[k].shape) for k in ("pooled_output", "sequence_output")}
  result.output_shapes["encoder_outputs"] = (
      len(hub_out["encoder_outputs"]),) + tuple(
          hub_out["encoder_outputs"][0].shape)

  # Masked-LM probes through .mlm.
  masked = [s for s in sentences if fill_mask.MASK_TEXT in s]
  if masked:
    max_length = int(pretrainer.encoder_network.get_config()[
        "max_sequence_length"])
    probe = fill_mask.mask_inputs(masked, preprocessor,
                                  max_seq_length=max_length)
    hub_mlm = encoder.mlm(probe.inputs, training=False)
    model_mlm = pretrainer(probe.inputs, training=False)
    for name in ("mlm_logits", "pooled_output", "sequence_output"):
      compare("mlm/" + name, hub_mlm[name], model_mlm[name])
    ids = fill_mask.top_k_ids(hub_mlm["mlm_logits"], probe.positions, top_k)
    result.predictions = [
        (sentence, [[vocab[i] for i in best] for best in row])
        for sentence, row in zip(masked, ids)]

  bad = {k: v for k, v in errors.items() if not v <= VERIFY_TOLERANCE}
  if bad:
    raise VerificationError(
        "The reloaded SavedModel differs from the in-memory model: "
        + ", ".join(f"{k} relative error {v:.2e}" for k, v in bad.items())
        + f" (tolerance {VERIFY_TOLERANCE:.0e}).")
  with tf.io.gfile.GFile(encoder.vocab_file.asset_path.numpy(), "r") as f:
    if f.read().split("\n")[:len(vocab)] != list(vocab):
      raise VerificationError("The encoder's vocab_file asset differs from "
                              "the vocabulary.")
  try:
    stored = encoder_savedmodel.read_config(encoder_dir)
  except ValueError as e:
    raise VerificationError(str(e)) from None
  expected = config or encoder_savedmodel.pretrainer_config(pretrainer)
  if stored != expected:
    raise VerificationError(
        "The encoder's bert_config_file asset differs from the model's "
        "config.")
  special = {k: int(v) for k, v in
             preprocessor.tokenize.get_special_tokens_dict().items()}
  if special["vocab_size"] != len(vocab):
    raise VerificationError(
        f"The preprocessor's vocab_size {special['vocab_size']} differs from "
        f"the vocabulary's {len(vocab)}.")

  result.sizes = {"encoder": dir_size(encoder_dir),
                  "preprocessor": dir_size(preprocessor_dir)}
  result.signatures = {"encoder": signature_summary(encoder),
                       "preprocessor": signature_summary(preprocessor)}
  result.callables = {
      "encoder": ["__call__"] + [
          n for n in ("mlm", "vocab_file", "do_lower_case", "bert_config_file")
          if hasattr(encoder, n)],
      "preprocessor": ["__call__"] + [
          n for n in ("tokenize", "tokenize_with_offsets", "bert_pack_inputs",
                      "vocab_file") if hasattr(preprocessor, n)]}
  return result
