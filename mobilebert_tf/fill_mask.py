"""Fill-mask: the most likely tokens for each `[MASK]` in raw text.

Like transformers' `pipeline("fill-mask")`, on the project's preprocessor and
masked-LM head; the project's one implementation: `mask_inputs` packs texts
with "[MASK]"s, `top_k_ids` reads the predictions, `fill_mask` does both and
adds probabilities (the export's verification and the demo use them). The
preprocessor's tokenizer splits a literal "[MASK]" into "[", "mask", "]" (as
the original BERT does), so the text between the masks is tokenized piece by
piece and the `[MASK]` id put in between.

Example:

>>> preprocessor = build_preprocessor("vocab.txt", do_lower_case=True)
>>> pretrainer = build_pretrainer(config)  # + restore a checkpoint
>>> fill_mask("the capital of france is [MASK].", preprocessor, pretrainer)
[[{'token': 'paris', 'token_id': 3000, 'probability': 0.41}, ...]]
"""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from mobilebert_tf import preprocessing

MASK_TEXT = "[MASK]"


def _vocab_of(preprocessor) -> List[str]:
  asset = getattr(preprocessor, "vocab_file", None)
  if asset is None:
    raise ValueError("The preprocessor has no `vocab_file`; pass `vocab=` "
                     "(the list of tokens) to fill_mask.")
  path = asset.asset_path if hasattr(asset, "asset_path") else asset
  if isinstance(path, tf.Tensor) or hasattr(path, "numpy"):
    path = path.numpy()
  if isinstance(path, bytes):
    path = path.decode("utf-8")
  return preprocessing.read_vocab(path)


def _mlm_logits(model, inputs) -> np.ndarray:
  """Runs a pretrainer, `MobileBertForMaskedLM`, or a hub encoder's `.mlm`."""
  if hasattr(model, "mlm") and not hasattr(model, "masked_lm"):
    model = model.mlm  # hub.load(encoder_dir): call its `.mlm`.
  tensors = {k: tf.constant(v) for k, v in inputs.items()}
  try:
    outputs = model(tensors, training=False)
  except TypeError:  # A plain `tf.function` without `training`.
    outputs = model(tensors)
  if isinstance(outputs, dict):
    if "mlm_logits" not in outputs:
      raise ValueError("The model returned no `mlm_logits`; pass a "
                       "MobileBertPretrainer, a MobileBertForMaskedLM or an "
                       "exported encoder with `.mlm`. Received outputs: "
                       f"{sorted(outputs)}")
    outputs = outputs["mlm_logits"]
  return np.asarray(outputs, np.float64)


class MaskedInputs(NamedTuple):
  """Model inputs for texts with "[MASK]"s (see `mask_inputs`).

  Attributes:
    inputs: dict of int32 arrays: `input_word_ids`, `input_mask`,
      `input_type_ids` `[batch, seq]` and `masked_lm_positions`
      `[batch, max masks]` (rows with fewer masks repeat their last
      position).
    positions: per row, the positions of its masks, left to right: the
      first `len(positions[row])` entries of `masked_lm_positions[row]`.
  """
  inputs: Dict[str, np.ndarray]
  positions: List[List[int]]


def mask_inputs(texts: Sequence[str], preprocessor,
                seq_length: Optional[int] = None,
                max_seq_length: int = 512) -> MaskedInputs:
  """Packs texts whose "[MASK]"s mark the words to predict.

  The text between the masks is tokenized with `preprocessor.tokenize`
  (which splits a literal "[MASK]" like any bracketed word, as the original
  BERT does) and the `[MASK]` id is put in between; each row is
  `[CLS] pieces [SEP]`, then `[PAD]`s.

  Args:
    texts: list of str, each with at least one "[MASK]".
    preprocessor: the project's preprocessor (`build_preprocessor`, or the
      `hub.load`-ed preprocessor SavedModel); its `.tokenize` and
      special-token ids are used.
    seq_length: int. Pad every row to exactly this length. Defaults to None:
      one more than the longest row (so every row has a `[PAD]` after it:
      with `trigram_input` the last token's embedding includes its right
      neighbour, zeros past the end, else the `[PAD]` embedding; packers pad
      to a fixed length, so models see `[PAD]` there).
    max_seq_length: int. Longest row accepted. Defaults to 512.

  Returns:
    A `MaskedInputs`.

  Raises:
    ValueError: a text without "[MASK]", or a text too long.
  """
  texts = list(texts)
  for i, text in enumerate(texts):
    if not isinstance(text, str) or MASK_TEXT not in text:
      raise ValueError(f"Every text must contain {MASK_TEXT}. Received: "
                       f"texts[{i}]={text!r}")
  if seq_length is not None and seq_length <= max_seq_length:
    limit, limit_name = seq_length, "seq_length"
  else:
    limit, limit_name = max_seq_length, "max_seq_length"
  special = preprocessing.special_token_ids(preprocessor.tokenize)
  mask_id = special["mask_id"]
  parts = [text.split(MASK_TEXT) for text in texts]
  flat = [p for ps in parts for p in ps]
  pieces = preprocessor.tokenize(tf.constant(flat)).merge_dims(-2, -1)
  pieces = pieces.to_list()
  rows, positions, k = [], [], 0
  for i, ps in enumerate(parts):
    row, where = [special["start_of_sequence_id"]], []
    for j in range(len(ps)):
      if j:
        where.append(len(row))
        row.append(mask_id)
      row.extend(pieces[k])
      k += 1
    row.append(special["end_of_segment_id"])
    if len(row) > limit:
      raise ValueError(
          f"texts[{i}] is {len(row)} word pieces long with [CLS] and [SEP]; "
          f"at most {limit_name}={limit} fit. Shorten the text.")
    rows.append(row)
    positions.append(where)

  seq = limit if limit_name == "seq_length" else min(
      max(len(r) for r in rows) + 1, max_seq_length)
  width = max(len(p) for p in positions)
  batch = len(rows)
  inputs = dict(
      input_word_ids=np.full((batch, seq), special["padding_id"], np.int32),
      input_mask=np.zeros((batch, seq), np.int32),
      input_type_ids=np.zeros((batch, seq), np.int32),
      masked_lm_positions=np.array(
          [p + [p[-1]] * (width - len(p)) for p in positions], np.int32))
  for i, row in enumerate(rows):
    inputs["input_word_ids"][i, :len(row)] = row
    inputs["input_mask"][i, :len(row)] = 1
  return MaskedInputs(inputs=inputs, positions=positions)


def top_k_ids(mlm_logits, positions: Sequence[Sequence[int]],
              k: int = 5) -> List[List[List[int]]]:
  """The `k` most likely token ids for each mask, most likely first.

  Args:
    mlm_logits: float `[batch, max masks, vocab]`, the model's `mlm_logits`
      for `MaskedInputs.inputs`.
    positions: `MaskedInputs.positions`: only the first
      `len(positions[row])` predictions of a row are real.
    k: int. Defaults to 5.

  Returns:
    Per row, per mask: `k` ids (ties broken by the lower id).
  """
  mlm_logits = np.asarray(mlm_logits)
  return [[np.argsort(-mlm_logits[row, j], kind="stable")[:k].tolist()
           for j in range(len(where))]
          for row, where in enumerate(positions)]


def fill_mask(texts: Union[str, Sequence[str]], preprocessor,
              pretrainer_or_mlm, top_k: int = 5,
              vocab: Optional[Sequence[str]] = None,
              max_seq_length: int = 512) -> List[Any]:
  """The `top_k` tokens with their probabilities for every `[MASK]`.

  Args:
    texts: str or list of str, each with at least one "[MASK]".
    preprocessor: the project's preprocessor (`build_preprocessor`, or the
      `hub.load`-ed preprocessor SavedModel); its `.tokenize`, special-token
      ids and `vocab_file` are used.
    pretrainer_or_mlm: a `MobileBertPretrainer`, a
      `heads.MobileBertForMaskedLM`, or an exported encoder (`hub.load(dir)`,
      its `.mlm` is called) or its `.mlm` itself.
    top_k: int. Tokens per mask. Defaults to 5.
    vocab: list of str. Token of each id; defaults to the preprocessor's
      vocab file.
    max_seq_length: int. Longest packed input accepted. Defaults to 512.

  Returns:
    For each text (for a single str: only its result), a list with one entry
    per "[MASK]" in order: a list of `top_k` dicts `{"token": str,
    "token_id": int, "probability": float}`, most likely first; the
    probabilities are the softmax over the whole vocabulary.

  Raises:
    ValueError: a text without "[MASK]", a text too long, or `top_k` < 1.
  """
  single = isinstance(texts, str)
  texts = [texts] if single else list(texts)
  if not texts:
    return []
  if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
    raise ValueError(f"`top_k` must be a positive integer. Received: "
                     f"top_k={top_k!r}")
  masked = mask_inputs(texts, preprocessor, max_seq_length=max_seq_length)
  vocab = list(vocab) if vocab is not None else _vocab_of(preprocessor)
  logits = _mlm_logits(pretrainer_or_mlm, masked.inputs)  # [batch, masks, V]
  if logits.shape[-1] != len(vocab):
    raise ValueError(f"The model predicts {logits.shape[-1]} tokens but the "
                     f"vocabulary has {len(vocab)}: they do not belong "
                     "together.")
  logits -= logits.max(axis=-1, keepdims=True)
  probabilities = np.exp(logits)
  probabilities /= probabilities.sum(axis=-1, keepdims=True)
  results = []
  for row, per_mask in enumerate(top_k_ids(probabilities, masked.positions,
                                           top_k)):
    results.append([[dict(token=vocab[t], token_id=int(t),
                          probability=float(probabilities[row, j, t]))
                     for t in best] for j, best in enumerate(per_mask)])
  return results[0] if single else results
