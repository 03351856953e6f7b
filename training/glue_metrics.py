"""The GLUE metrics: accuracy, F1, Matthews correlation, Pearson, Spearman.

Thin, named wrappers around scikit-learn and SciPy, so that every task
(`training.glue`) scores with the same functions as GLUE's own evaluation
(and transformers' `glue_compute_metrics`):

| task                   | metrics                            |
|------------------------|------------------------------------|
| CoLA                   | matthews_corrcoef                  |
| SST-2, MNLI, QNLI, RTE, WNLI, XNLI | accuracy               |
| MRPC, QQP              | accuracy, f1 (positive class 1)    |
| STS-B                  | pearson, spearman (regression)     |

Classification metrics take integer class ids (`labels`, `predictions`),
the correlations float scores. Where a correlation is undefined (constant
predictions or labels) it is NaN, without a warning.

Example:

>>> compute(("accuracy", "f1"), [1, 0, 1, 1], [1, 0, 0, 1])
{'accuracy': 0.75, 'f1': 0.8}
"""

from typing import Callable, Dict, Sequence
import warnings

import numpy as np
from scipy import stats
from sklearn import metrics as sk_metrics


def accuracy(labels, predictions) -> float:
  """The fraction of predictions equal to the labels."""
  return float(sk_metrics.accuracy_score(labels, predictions))


def f1(labels, predictions) -> float:
  """F1 of the positive class 1 (MRPC: paraphrase; QQP: duplicate).

  0.0 where there is no positive label or prediction.
  """
  return float(sk_metrics.f1_score(labels, predictions, pos_label=1,
                                   average="binary", zero_division=0.0))


def matthews_corrcoef(labels, predictions) -> float:
  """Matthews correlation coefficient, in [-1, 1] (0.0 where undefined)."""
  return float(sk_metrics.matthews_corrcoef(labels, predictions))


def _correlation(function, labels, scores) -> float:
  labels = np.asarray(labels, np.float64)
  scores = np.asarray(scores, np.float64)
  with warnings.catch_warnings():
    # A constant input: the correlation is NaN, which is the answer.
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    return float(function(labels, scores)[0])


def pearson(labels, scores) -> float:
  """Pearson's correlation coefficient of float scores (NaN if constant)."""
  return _correlation(stats.pearsonr, labels, scores)


def spearman(labels, scores) -> float:
  """Spearman's rank correlation of float scores (NaN if constant)."""
  return _correlation(stats.spearmanr, labels, scores)


METRICS: Dict[str, Callable[..., float]] = dict(
    accuracy=accuracy, f1=f1, matthews_corrcoef=matthews_corrcoef,
    pearson=pearson, spearman=spearman)


def compute(names: Sequence[str], labels, predictions) -> Dict[str, float]:
  """The metrics `names` of `predictions` against `labels`, in that order.

  Args:
    names: sequence of str, each a key of `METRICS`.
    labels: sequence of int class ids, or float scores (correlations).
    predictions: the same for the predictions, as many as `labels`.

  Returns:
    dict name -> float.

  Raises:
    ValueError: an unknown metric name, no examples, or `labels` and
      `predictions` of different lengths.
  """
  unknown = [n for n in names if n not in METRICS]
  if unknown:
    raise ValueError(f"Unknown metric {', '.join(map(repr, unknown))}; "
                     f"known: {', '.join(METRICS)}. Received: names={names!r}")
  if len(labels) != len(predictions) or not len(labels):
    raise ValueError(
        "`labels` and `predictions` must be non-empty and of the same length. "
        f"Received: {len(labels)} labels, {len(predictions)} predictions")
  return {n: METRICS[n](labels, predictions) for n in names}
