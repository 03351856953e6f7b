"""The sentence-classifier TFLite model: packed inputs in, probabilities out.

`convert_classifier` turns a `MobileBertForSequenceClassification` over a
`MobileBERTEncoder` into a fixed-shape TFLite model whose `serving_default`
takes the three int32 encoder inputs `[1, seq_length]` and returns float32
`probabilities` `[1, num_classes]` (the softmax of the logits), the shape
that on-device text classifiers (TFLite's and MediaPipe's BERT
classifiers) run. The model is rebuilt without input checks (TFLite has no
Assert op) and its weights restored by object graph from the trained one;
a quantization-aware (QAT) classifier keeps its fake quantization, whose
learnt ranges the full-integer conversion uses.

`evaluate_classifier` runs the flatbuffer in LiteRT on examples one by one
and scores it against their labels and the in-memory model's
probabilities; `check_classifier` applies the bars below.

Example:

>>> flatbuffer = convert_classifier(classifier, config, seq_length=128,
...                                 quantization="dynamic")
>>> report = evaluate_classifier(flatbuffer, inputs, labels, expected)
>>> check_classifier(report, "dynamic")
"""

import dataclasses
from typing import Dict, Iterable, Optional

import numpy as np
import tf_keras

from export import tflite_convert
from export import tflite_verify
from mobilebert_tf import heads

CLASSIFIER_OUTPUTS = ("probabilities",)
QUANTIZATIONS = tflite_convert.TASK_QUANTIZATIONS
# float32: the same graph as the in-memory model, summation order apart.
FLOAT_MAX_ABS_DIFF = 1e-4
# Quantized: the accuracy lost on the evaluation set, in points. 1 point is
# the on-device target (QAT full int8 within 1 point of float32).
DEFAULT_MAX_ACCURACY_DROP = 1.0


class _Probabilities(tf_keras.Model):
  """The classifier's softmax, as the dict `convert_model` traces."""

  def __init__(self, classifier):
    super().__init__(name="probabilities")
    self.classifier = classifier

  def call(self, inputs, training=None):
    logits = self.classifier(inputs, training=training)
    return dict(probabilities=tf_keras.activations.softmax(logits))


def convert_classifier(classifier, config, seq_length: int,
                       quantization: str = "none",
                       representative_batches: Optional[Iterable[dict]] = None
                       ) -> bytes:
  """The TFLite flatbuffer of a sentence classifier (batch 1).

  Args:
    classifier: a `MobileBertForSequenceClassification` over a
      `MobileBERTEncoder` of `config`.
    config: its `MobileBertConfig` (with `use_quantized_training` for a QAT
      classifier).
    seq_length: int.
    quantization: one of `QUANTIZATIONS`. Defaults to "none".
    representative_batches: for "int8": dicts of int32 `[1, seq_length]`
      encoder inputs of real text (the activations' calibration).

  Raises:
    tflite_convert.ConversionError: a bad option.
  """
  tflite_convert.check_task_quantization("classifier", quantization)
  rebuilt = tflite_convert.rebuild_without_checks(
      classifier, config,
      lambda encoder: heads.MobileBertForSequenceClassification(
          encoder, num_classes=classifier.num_classes, classifier_dropout=0.0,
          name=classifier.name))
  return tflite_convert.convert_model(
      _Probabilities(rebuilt), CLASSIFIER_OUTPUTS, quantization,
      seq_length=seq_length, batch_size=1,
      representative_batches=representative_batches)


@dataclasses.dataclass
class ClassifierReport:
  """A TFLite classifier scored on labelled examples.

  Attributes:
    examples: int.
    accuracy: the TFLite model's accuracy (0-1).
    reference_accuracy: the in-memory model's accuracy on the same examples.
    agreement: fraction of examples where both predict the same class.
    max_abs_diff: the largest |probability difference|.
  """
  examples: int
  accuracy: float
  reference_accuracy: float
  agreement: float
  max_abs_diff: float

  @property
  def accuracy_drop(self) -> float:
    """Points of accuracy lost to the conversion (negative: gained)."""
    return 100.0 * (self.reference_accuracy - self.accuracy)

  def format(self) -> str:
    return (f"accuracy {100 * self.accuracy:.2f} (in memory "
            f"{100 * self.reference_accuracy:.2f}) on {self.examples} "
            f"examples, same class on {100 * self.agreement:.1f}%, max "
            f"|probability difference| {self.max_abs_diff:.2g}")


def evaluate_classifier(flatbuffer: bytes, inputs: Dict[str, np.ndarray],
                        labels: np.ndarray, expected: np.ndarray,
                        num_threads: Optional[int] = None
                        ) -> ClassifierReport:
  """Runs the TFLite classifier on every row of `inputs` (batch 1).

  Args:
    flatbuffer: from `convert_classifier`.
    inputs: int32 `[n, seq_length]` encoder inputs.
    labels: int `[n]` class ids.
    expected: float `[n, num_classes]`, the in-memory model's probabilities.
    num_threads: LiteRT threads; default: all cores.
  """
  rows = [{k: v[i:i + 1] for k, v in inputs.items()}
          for i in range(len(labels))]
  got = tflite_verify.run_tflite(flatbuffer, rows, num_threads=num_threads,
                                 output_names=CLASSIFIER_OUTPUTS)
  got = got["probabilities"]
  labels = np.asarray(labels)
  return ClassifierReport(
      examples=len(labels),
      accuracy=float(np.mean(got.argmax(-1) == labels)),
      reference_accuracy=float(np.mean(expected.argmax(-1) == labels)),
      agreement=float(np.mean(got.argmax(-1) == expected.argmax(-1))),
      max_abs_diff=float(np.abs(got - expected).max()))


def check_classifier(report: ClassifierReport, quantization: str,
                     max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
                     ) -> None:
  """Refuses a conversion that computes something else.

  float32 must give the in-memory probabilities to `FLOAT_MAX_ABS_DIFF`; a
  quantized model may lose at most `max_accuracy_drop` points of accuracy.

  Raises:
    tflite_verify.VerificationError: with the measurement.
  """
  if quantization == "none":
    if not report.max_abs_diff <= FLOAT_MAX_ABS_DIFF:
      raise tflite_verify.VerificationError(
          f"the float32 TFLite classifier differs from the in-memory model: "
          f"{report.format()} (bar {FLOAT_MAX_ABS_DIFF:g})")
  elif not report.accuracy_drop <= max_accuracy_drop:
    raise tflite_verify.VerificationError(
        f"the {quantization} TFLite classifier loses "
        f"{report.accuracy_drop:.2f} points: {report.format()} (bar "
        f"{max_accuracy_drop:g} points)")
