"""Fill-mask: the most likely tokens for each `[MASK]` in raw text.

Like transformers' `pipeline("fill-mask")`, on the project's preprocessor and
masked-LM head. The preprocessor's tokenizer splits a literal "[MASK]" into
"[", "mask", "]" (as the original BERT does), so the text between the masks
is tokenized piece by piece and the `[MASK]` id put in between.

Example:

>>> preprocessor = build_preprocessor("vocab.txt", do_lower_case=True)
>>> pretrainer = build_pretrainer(config)  # + restore a checkpoint
>>> fill_mask("the capital of france is [MASK].", preprocessor, pretrainer)
[[{'token': 'paris', 'token_id': 3000, 'probability': 0.41}, ...]]
"""

from typing import Any, List, Optional, Sequence, Union

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


def fill_mask(texts: Union[str, Sequence[str]], preprocessor,
              pretrainer_or_mlm, top_k: int = 5,
              vocab: Optional[Sequence[str]] = None,
              max_seq_length: int = 512) -> List[Any]:
  """The `top_k` tokens with their probabilities for every `[MASK]`.

  Args:
    texts: str or list of str, each with at least one "[MASK]".
    preprocessor: the project's preprocessor (`build_preprocessor`, or the
      `hub.load`-ed SavedModel of `export_preprocessor`); its `.tokenize`,
      special-token ids and `vocab_file` are used.
    pretrainer_or_mlm: a `MobileBertPretrainer`, a
      `heads.MobileBertForMaskedLM`, or an exported encoder (`hub.load(dir)`, its `.mlm` is called) or its
      `.mlm` itself.
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
  for i, text in enumerate(texts):
    if not isinstance(text, str) or MASK_TEXT not in text:
      raise ValueError(f"Every text must contain {MASK_TEXT}. Received: "
                       f"texts[{i}]={text!r}")
  vocab = list(vocab) if vocab is not None else _vocab_of(preprocessor)
  special = {k: int(np.asarray(v)) for k, v in
             preprocessor.tokenize.get_special_tokens_dict().items()}
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
    if len(row) > max_seq_length:
      raise ValueError(
          f"texts[{i}] is {len(row)} word pieces long with [CLS] and [SEP]; "
          f"at most max_seq_length={max_seq_length} fit. Shorten the text.")
    rows.append(row)
    positions.append(where)

  # At least one [PAD] after every row: with `trigram_input` the last token's
  # embedding includes its right neighbour (zeros past the end, else the
  # [PAD] embedding), so a row's result must not depend on the batch's
  # longest row. Packers pad to a fixed length, so models see [PAD] there.
  seq = min(max(len(r) for r in rows) + 1, max_seq_length)
  width = max(len(p) for p in positions)
  batch = len(rows)
  inputs = dict(
      input_word_ids=np.full((batch, seq), special["padding_id"], np.int32),
      input_mask=np.zeros((batch, seq), np.int32),
      input_type_ids=np.zeros((batch, seq), np.int32),
      # Rows with fewer masks repeat their last position (results dropped).
      masked_lm_positions=np.array(
          [p + [p[-1]] * (width - len(p)) for p in positions], np.int32))
  for i, row in enumerate(rows):
    inputs["input_word_ids"][i, :len(row)] = row
    inputs["input_mask"][i, :len(row)] = 1

  logits = _mlm_logits(pretrainer_or_mlm, inputs)  # [batch, width, vocab]
  if logits.shape[-1] != len(vocab):
    raise ValueError(f"The model predicts {logits.shape[-1]} tokens but the "
                     f"vocabulary has {len(vocab)}: they do not belong "
                     "together.")
  logits -= logits.max(axis=-1, keepdims=True)
  probabilities = np.exp(logits)
  probabilities /= probabilities.sum(axis=-1, keepdims=True)
  results = []
  for i, where in enumerate(positions):
    per_mask = []
    for j in range(len(where)):
      best = np.argsort(-probabilities[i, j], kind="stable")[:top_k]
      per_mask.append([dict(token=vocab[t], token_id=int(t),
                            probability=float(probabilities[i, j, t]))
                       for t in best])
    results.append(per_mask)
  return results[0] if single else results
