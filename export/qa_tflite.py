"""The question-answering TFLite model: packed windows in, span logits out.

`convert_qa` turns a `MobileBertForQuestionAnswering` over a
`MobileBERTEncoder` into a fixed-shape TFLite model (float32, dynamic-range
int8 or full int8) whose `serving_default` takes the three int32 encoder
inputs `[1, seq_length]` (one window: `qa.prepare_qa_inputs`'s rows) and
returns float32 `start_logits` and `end_logits` `[1, seq_length]`, the shape
of TFLite's BERT question-answerer models; outside the context the logits
are one below the window's lowest (`rebuild_without_checks`). The model is
rebuilt without input checks (TFLite has no Assert op) and its weights
restored by object graph from the trained one; a quantization-aware (QAT)
model keeps its fake quantization, whose learnt ranges the full-integer
conversion uses.

Two checks. `verify_qa` runs the flatbuffer in LiteRT on every window of
some questions and requires the in-memory model's answers (float32, where
no answers are known). On a set with answers, `run_qa` gives the logits of
every window, the caller scores them (EM and F1) as it scores the in-memory
model, and `check_qa` applies the bars below to the `QAReport`.

Example:

>>> flatbuffer = convert_qa(model, config, seq_length=384)
>>> verify_qa(flatbuffer, model, preprocessor, questions, contexts,
...           seq_length=384)
"""

import dataclasses
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from export import tflite_convert
from export import tflite_verify
from mobilebert_tf import heads
from mobilebert_tf import qa

QA_OUTPUTS = ("start_logits", "end_logits")
QUANTIZATIONS = tflite_convert.TASK_QUANTIZATIONS
# Quantized: the F1 lost on the evaluation set, in points. 1 point is the
# on-device target (QAT full int8 within 1 F1 point of float32).
DEFAULT_MAX_F1_DROP = 1.0


def rebuild_without_checks(model, config):
  """A copy of the QA model, its encoder without input checks, the logits
  outside the context one below the window's lowest.

  The in-memory model sets them to -1e9; a full-integer model has one int8
  step for its whole output range, which -1e9 makes about 4e6, rounding
  every real logit to one value (measured: F1 3.37 and no answer kept in
  every full-int8 form, against 35.84 in float:
  `benchmarks/results/squad-20261204T192037Z-amd-epyc.md`). Ranked below
  every other logit either way, the masked tokens never enter the spans: the
  answers are the same, of `qa.extract_answers` as of the Task Library's
  `BertQuestionAnswerer`; on the context and at position 0 the logits are
  the in-memory model's.
  """
  return tflite_convert.rebuild_without_checks(
      model, config, lambda encoder: heads.MobileBertForQuestionAnswering(
          encoder, classifier_dropout=0.0, masked_logit=None,
          name=model.name))


def convert_qa(model, config, seq_length: int, quantization: str = "none",
               representative_batches: Optional[Iterable[dict]] = None
               ) -> bytes:
  """The TFLite flatbuffer of a QA model (batch 1).

  Args:
    model: a `MobileBertForQuestionAnswering` over a `MobileBERTEncoder` of
      `config`.
    config: its `MobileBertConfig` (with `use_quantized_training` for a QAT
      model).
    seq_length: int, the window length.
    quantization: one of `QUANTIZATIONS`. Defaults to "none" (float32).
    representative_batches: for "int8": dicts of int32 `[1, seq_length]`
      windows of real text (the activations' calibration).

  Raises:
    tflite_convert.ConversionError: a bad option.
  """
  tflite_convert.check_task_quantization("QA model", quantization)
  return tflite_convert.convert_model(
      rebuild_without_checks(model, config), QA_OUTPUTS, quantization,
      seq_length=seq_length, batch_size=1,
      representative_batches=representative_batches)


def run_qa(flatbuffer: bytes, inputs: Dict[str, np.ndarray],
           num_threads: Optional[int] = None) -> Dict[str, np.ndarray]:
  """`start_logits` and `end_logits` `[n, seq_length]` of LiteRT on every
  window of `inputs` (int32 `[n, seq_length]` encoder inputs), one by one."""
  return tflite_verify.run_tflite(
      flatbuffer, tflite_convert.split_rows(inputs, 1),
      num_threads=num_threads, output_names=QA_OUTPUTS)


def max_logit_difference(got: Dict[str, np.ndarray],
                         want: Dict[str, np.ndarray], features) -> float:
  """The largest |start/end logit difference| over the context pieces of
  the windows (`qa.prepare_qa_inputs`'s features): the logits that answer."""
  context = features.context_mask
  return max(float(np.abs(got[k][context] - want[k][context]).max())
             for k in QA_OUTPUTS)


@dataclasses.dataclass
class QAReport:
  """A TFLite QA model scored on questions with answers.

  Attributes:
    questions: int.
    windows: int.
    exact_match, f1: the TFLite model's official SQuAD scores (0-100).
    reference_exact_match, reference_f1: the in-memory model's.
    same_answer: fraction of questions where both give the same answer.
    max_abs_logit_diff: the largest |logit difference| over context pieces.
  """
  questions: int
  windows: int
  exact_match: float
  f1: float
  reference_exact_match: float
  reference_f1: float
  same_answer: float
  max_abs_logit_diff: float

  @property
  def f1_drop(self) -> float:
    """Points of F1 lost to the conversion (negative: gained)."""
    return self.reference_f1 - self.f1

  def format(self) -> str:
    return (f"EM {self.exact_match:.2f}, F1 {self.f1:.2f} (in memory "
            f"{self.reference_exact_match:.2f}, {self.reference_f1:.2f}) on "
            f"{self.questions} questions ({self.windows} windows), same "
            f"answer on {100 * self.same_answer:.1f}%, max |logit "
            f"difference| {self.max_abs_logit_diff:.2g}")


def check_qa(report: QAReport, quantization: str,
             max_f1_drop: float = DEFAULT_MAX_F1_DROP) -> None:
  """Refuses a conversion that computes something else.

  float32 must give the in-memory answer to every question; a quantized
  model may lose at most `max_f1_drop` points of F1.

  Raises:
    tflite_verify.VerificationError: with the measurement.
  """
  if quantization == "none":
    if report.same_answer != 1.0:
      raise tflite_verify.VerificationError(
          f"the float32 TFLite QA model answers otherwise than the in-memory "
          f"model: {report.format()}")
  elif not report.f1_drop <= max_f1_drop:
    raise tflite_verify.VerificationError(
        f"the {quantization} TFLite QA model loses {report.f1_drop:.2f} F1 "
        f"points: {report.format()} (bar {max_f1_drop:g} points)")


def verify_qa(flatbuffer: bytes, model, preprocessor,
              questions: Sequence[str], contexts: Sequence[str],
              seq_length: int, max_query_length: int = 64,
              doc_stride: int = 128, **answer_options) -> Dict[str, float]:
  """Checks that LiteRT answers as the in-memory model.

  Args:
    flatbuffer: from `convert_qa`.
    model: the in-memory QA model.
    preprocessor: the project's preprocessor of its vocabulary.
    questions, contexts: the check's examples.
    seq_length, max_query_length, doc_stride: the windows.
    **answer_options: `qa.extract_answers` arguments (n_best_size, ...).

  Returns:
    {"questions", "windows", "max_abs_logit_diff"} (over the context
    pieces).

  Raises:
    RuntimeError: an answer differs.
  """
  inputs, features = qa.prepare_qa_inputs(
      preprocessor, questions, contexts, seq_length=seq_length,
      max_query_length=max_query_length, doc_stride=doc_stride)
  got = run_qa(flatbuffer, inputs)
  want = model(inputs, training=False)
  want = {k: want[k].numpy() for k in QA_OUTPUTS}
  diff = max_logit_difference(got, want, features)
  ours = qa.extract_answers(got["start_logits"], got["end_logits"], features,
                            **answer_options)
  theirs = qa.extract_answers(want["start_logits"], want["end_logits"],
                              features, **answer_options)
  for row, (a, b) in enumerate(zip(ours, theirs)):
    if (a.text, a.start_char) != (b.text, b.start_char):
      raise RuntimeError(
          f"The TFLite QA model answers question {row} with {a.text!r}, the "
          f"in-memory model with {b.text!r} (max |logit difference| "
          f"{diff:.3g}); nothing was written.")
  return dict(questions=len(questions), windows=len(features),
              max_abs_logit_diff=diff)
