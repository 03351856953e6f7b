"""Masked-LM evaluation: top-k accuracy and cross-entropy on held-out data.

For a pretrainer (`MobileBertPretrainer`, or anything that maps the
pretrainer inputs to a dict with `mlm_logits`) and a
`training.pretraining_data.Batch` (e.g. from `make_eval_examples`).

Example:

>>> batch = make_eval_examples(held_out_ids, special, seq_length=64)
>>> masked_lm_metrics(pretrainer, batch)
{'top1': 0.32, 'top5': 0.53, 'loss': 3.83, 'count': 1560}
"""

from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from training import pretraining_data


def masked_lm_metrics(pretrainer, batch: pretraining_data.Batch,
                      batch_size: int = 256,
                      top_k: Sequence[int] = (1, 5)) -> Dict[str, float]:
  """Top-k accuracy and mean cross-entropy of the masked-LM predictions.

  Runs in inference mode (no dropout), `batch_size` examples at a time.
  Only the predictions with `masked_lm_weights` 1 count (a weighted mean for
  other weights).

  Args:
    pretrainer: callable on the pretrainer inputs, `training=False`,
      returning a dict with `mlm_logits` `[n, P, vocab]`.
    batch: `pretraining_data.Batch`.
    batch_size: int. Examples per call. Defaults to 256.
    top_k: sequence of int. The k of each accuracy. Defaults to (1, 5).

  Returns:
    `{"top1": float, ..., "loss": float, "count": int}`: for each k, the
    fraction of predictions whose label is among the k most likely tokens
    (ties broken by the lower id); the mean cross-entropy per prediction in
    nats; the number of predictions.

  Raises:
    ValueError: `batch` has no weighted prediction, or a bad `top_k` or
      `batch_size`.
  """
  top_k = list(top_k)
  if not top_k or any(isinstance(k, bool) or not isinstance(k, int) or k < 1
                      for k in top_k):
    raise ValueError(f"`top_k` must be positive integers. Received: "
                     f"top_k={top_k!r}")
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
      batch_size < 1:
    raise ValueError(f"`batch_size` must be a positive integer. Received: "
                     f"batch_size={batch_size!r}")
  count = float(np.sum(batch.masked_lm_weights))
  if count <= 0:
    raise ValueError("`batch` has no masked-LM prediction (all "
                     "`masked_lm_weights` are 0). Received: "
                     f"{len(batch)} examples")
  hits = {k: 0.0 for k in top_k}
  total_loss = 0.0
  for start in range(0, len(batch), batch_size):
    part = batch.take(slice(start, start + batch_size))
    outputs = pretrainer({k: tf.constant(v) for k, v in part.inputs().items()},
                         training=False)
    logits = np.asarray(outputs["mlm_logits"], np.float64)  # [n, P, vocab]
    weights = part.masked_lm_weights  # [n, P]
    labels = part.masked_lm_ids  # [n, P]
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :max(top_k)]
    for k in top_k:
      hit = (order[..., :k] == labels[..., None]).any(-1)  # [n, P]
      hits[k] += float((hit * weights).sum())
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    total_loss -= float((picked * weights).sum())
  result = {f"top{k}": hits[k] / count for k in top_k}
  result.update(loss=total_loss / count, count=int(round(count)))
  return result
