"""GLUE tasks: `training.glue`, `training.glue_metrics` and `--task_name`.

Tiny files in each task's real layout (the columns of GLUE's files, CoLA's
header-less train and dev files, MNLI's two dev and two test sets, XNLI's
multinli/ training file and multilingual dev file), the metrics against
hand-computed values and NumPy formulas, and two fine-tuning runs: MNLI
with --do_predict as a user runs it (a fresh process), STS-B (regression)
in process.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import helpers
from tests import workspace
from training import glue
from training import glue_metrics
from training import run_classifier as rc
from training import tsv


def _tsv(*rows):
  return "".join("\t".join(row) + "\n" for row in rows)


def _write_files(directory, files):
  for name, text in files.items():
    path = os.path.join(directory, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
  return str(directory)


_MNLI_PARSES = ("( a )", "( b )", "(ROOT a)", "(ROOT b)")
_MNLI_TRAIN_HEADER = (
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse",
    "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
    "sentence1", "sentence2", "label1", "gold_label")
_MNLI_DEV_HEADER = _MNLI_TRAIN_HEADER[:10] + (
    "label1", "label2", "label3", "label4", "label5", "gold_label")


def _mnli_train(index, a, b, label):
  return (str(index), "31193", f"{index}n", "government") + _MNLI_PARSES + (
      a, b, label, label)


def _mnli_dev(index, a, b, label):
  # The annotators' labels disagree: the gold label is the last field.
  return (str(index), "63735", f"{index}e", "fiction") + _MNLI_PARSES + (
      a, b, "neutral", "entailment", label, "neutral", "entailment", label)


def _mnli_test(index, a, b):
  return (str(index), "31", f"{index}c", "slate") + _MNLI_PARSES + (a, b)


def _stsb(index, a, b, *score):
  return (str(index), "main-captions", "MSRvid", "2012test", f"000{index}",
          "none", "none", a, b) + score


_STSB_HEADER = ("index", "genre", "filename", "year", "old_index", "source1",
                "source2", "sentence1", "sentence2", "score")
_XNLI_DEV_HEADER = (
    "language", "gold_label", "sentence1_binary_parse",
    "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
    "sentence1", "sentence2", "promptID", "pairID", "genre", "label1",
    "label2", "label3", "label4", "label5")


def _xnli_dev(language, label, a, b):
  return (language, label) + _MNLI_PARSES + (a, b, "1", "1", "facetoface",
                                             label, label, label, label,
                                             label)


# task -> (files in its directory, what reading them gives):
# {split: (texts, labels or test ids, line numbers)}.
TASK_FILES = {
    "cola": ({
        "train.tsv": _tsv(("gj04", "1", "", "our friends won't buy this ."),
                          ("gj04", "0", "*", "they drank the pub .")),
        "dev.tsv": _tsv(("bc01", "1", "", "the sailors rode the breeze .")),
        "test.tsv": _tsv(("index", "sentence"), ("0", "bill whistled ."),
                         ("1", "the car honked .")),
    }, {
        "train": ((["our friends won't buy this .", "they drank the pub ."],),
                  ["1", "0"], [1, 2]),
        "dev": ((["the sailors rode the breeze ."],), ["1"], [1]),
        "CoLA.tsv": ((["bill whistled .", "the car honked ."],), ["0", "1"],
                     [2, 3]),
    }),
    "sst-2": ({
        "train.tsv": _tsv(("sentence", "label"), ("hide new secretions ", "0"),
                          ("that loves its characters ", "1")),
        "dev.tsv": _tsv(("sentence", "label"), ("it 's a charming trip .",
                                                "1")),
        "test.tsv": _tsv(("index", "sentence"), ("0", "uneasy mishmash .")),
    }, {
        "train": ((["hide new secretions ", "that loves its characters "],),
                  ["0", "1"], [2, 3]),
        "dev": ((["it 's a charming trip ."],), ["1"], [2]),
        "SST-2.tsv": ((["uneasy mishmash ."],), ["0"], [2]),
    }),
    "mrpc": ({
        "train.tsv": _tsv(
            ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
            ("1", "702876", "702977", "Amrozi accused his brother .",
             'Referring to him as " the witness " , Amrozi accused him .'),
            ("0", "2108705", "2108831", "Yucaipa owned Dominick 's .",
             "Yucaipa bought Dominick 's in 1995 .")),
        "dev.tsv": _tsv(
            ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
            ("1", "1355540", "1355592", "He said the foodservice pie .",
             "The foodservice pie business ."),
            ("0", "2029631", "2029565", "Magnarelli said Racicot hated .",
             "His wife said he was hated .")),
        "test.tsv": _tsv(
            ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
            ("0", "1089874", "1089925", "PCCW 's chief .", "Current Chief .")),
    }, {
        "train": ((["Amrozi accused his brother .",
                    "Yucaipa owned Dominick 's ."],
                   ['Referring to him as " the witness " , Amrozi accused '
                    "him .", "Yucaipa bought Dominick 's in 1995 ."]),
                  ["1", "0"], [2, 3]),
        "dev": ((["He said the foodservice pie .",
                  "Magnarelli said Racicot hated ."],
                 ["The foodservice pie business .",
                  "His wife said he was hated ."]), ["1", "0"], [2, 3]),
        "MRPC.tsv": ((["PCCW 's chief ."], ["Current Chief ."]), ["0"], [2]),
    }),
    "sts-b": ({
        "train.tsv": _tsv(_STSB_HEADER,
                          _stsb(0, "A plane is taking off .",
                                "An air plane is taking off .", "5.000"),
                          _stsb(1, "A man is playing a flute .",
                                "A man is eating .", "0.500")),
        "dev.tsv": _tsv(_STSB_HEADER,
                        _stsb(0, "A man with a hard hat .",
                              "A man wearing a hard hat .", "4.750"),
                        _stsb(1, "A woman is dancing .",
                              "A man is talking .", "0.000"),
                        _stsb(2, "A cat plays .", "A kitten plays .",
                              "3.8")),
        "test.tsv": _tsv(_STSB_HEADER[:-1],
                         _stsb(0, "A girl is styling her hair .",
                               "A girl is brushing her hair .")),
    }, {
        "train": ((["A plane is taking off .", "A man is playing a flute ."],
                   ["An air plane is taking off .", "A man is eating ."]),
                  ["5.000", "0.500"], [2, 3]),
        "dev": ((["A man with a hard hat .", "A woman is dancing .",
                  "A cat plays ."],
                 ["A man wearing a hard hat .", "A man is talking .",
                  "A kitten plays ."]), ["4.750", "0.000", "3.8"],
                [2, 3, 4]),
        "STS-B.tsv": ((["A girl is styling her hair ."],
                       ["A girl is brushing her hair ."]), ["0"], [2]),
    }),
    "qqp": ({
        "train.tsv": _tsv(
            ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
            ("133273", "213221", "213222", "How is life as a math student ?",
             "Which level of preparation is enough ?", "0"),
            ("402555", "536040", "536041", "How do I get rid of anxiety ?",
             "How can I stop anxiety ?", "1")),
        "dev.tsv": _tsv(
            ("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
            ("201359", "303345", "303346", "Why are African-Americans "
             "so beautiful ?", "Why are hispanics so beautiful ?", "0")),
        "test.tsv": _tsv(("id", "question1", "question2"),
                         ("0", "Would the idea work ?", "Does it work ?"),
                         ("1", "What is life ?", "Why is life ?")),
    }, {
        "train": ((["How is life as a math student ?",
                    "How do I get rid of anxiety ?"],
                   ["Which level of preparation is enough ?",
                    "How can I stop anxiety ?"]), ["0", "1"], [2, 3]),
        "dev": ((["Why are African-Americans so beautiful ?"],
                 ["Why are hispanics so beautiful ?"]), ["0"], [2]),
        "QQP.tsv": ((["Would the idea work ?", "What is life ?"],
                     ["Does it work ?", "Why is life ?"]), ["0", "1"],
                    [2, 3]),
    }),
    "mnli": ({
        "train.tsv": _tsv(_MNLI_TRAIN_HEADER,
                          _mnli_train(0, "cream skimming has two dimensions .",
                                      "product and geography matter .",
                                      "neutral"),
                          _mnli_train(1, "you know during the season .",
                                      "you lose the things .", "entailment")),
        "dev_matched.tsv": _tsv(_MNLI_DEV_HEADER,
                                _mnli_dev(0, "the new rights are nice .",
                                          "everyone likes the benefits .",
                                          "contradiction")),
        "dev_mismatched.tsv": _tsv(_MNLI_DEV_HEADER,
                                   _mnli_dev(0, "your contribution helped .",
                                             "it helped the school .",
                                             "entailment"),
                                   _mnli_dev(1, "the answer is no .",
                                             "the answer is yes .",
                                             "contradiction")),
        "test_matched.tsv": _tsv(_MNLI_DEV_HEADER[:10],
                                 _mnli_test(0, "hierbas is a liqueur .",
                                            "it is a drink .")),
        "test_mismatched.tsv": _tsv(_MNLI_DEV_HEADER[:10],
                                    _mnli_test(0, "what a day .", "a day ."),
                                    _mnli_test(1, "he ran .", "he sat .")),
    }, {
        "train": ((["cream skimming has two dimensions .",
                    "you know during the season ."],
                   ["product and geography matter .",
                    "you lose the things ."]),
                  ["neutral", "entailment"], [2, 3]),
        "dev_matched": ((["the new rights are nice ."],
                         ["everyone likes the benefits ."]),
                        ["contradiction"], [2]),
        "dev_mismatched": ((["your contribution helped .",
                             "the answer is no ."],
                            ["it helped the school .",
                             "the answer is yes ."]),
                           ["entailment", "contradiction"], [2, 3]),
        "MNLI-m.tsv": ((["hierbas is a liqueur ."], ["it is a drink ."]),
                       ["0"], [2]),
        "MNLI-mm.tsv": ((["what a day .", "he ran ."], ["a day .", "he sat ."]),
                        ["0", "1"], [2, 3]),
    }),
    "qnli": ({
        "train.tsv": _tsv(("index", "question", "sentence", "label"),
                          ("0", "When did the third census occur ?",
                           "The third census was in 1790 .", "entailment")),
        "dev.tsv": _tsv(("index", "question", "sentence", "label"),
                        ("0", "What came into force ?",
                         "The law was repealed .", "not_entailment")),
        "test.tsv": _tsv(("index", "question", "sentence"),
                         ("0", "What is a raga ?", "A raga is a mode .")),
    }, {
        "train": ((["When did the third census occur ?"],
                   ["The third census was in 1790 ."]), ["entailment"], [2]),
        "dev": ((["What came into force ?"], ["The law was repealed ."]),
                ["not_entailment"], [2]),
        "QNLI.tsv": ((["What is a raga ?"], ["A raga is a mode ."]), ["0"],
                     [2]),
    }),
    "rte": ({
        "train.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                          ("0", "No weapons were found in Iraq .",
                           "Weapons were found in Iraq .", "not_entailment")),
        "dev.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                        ("0", "Dana Reeve died at 44 .",
                         "Christopher Reeve had an accident .",
                         "not_entailment"),
                        ("1", "Yet , we now are discovering .",
                         "We are discovering .", "entailment")),
        "test.tsv": _tsv(("index", "sentence1", "sentence2"),
                         ("0", "Mangla was summoned .", "Mangla was called .")),
    }, {
        "train": ((["No weapons were found in Iraq ."],
                   ["Weapons were found in Iraq ."]), ["not_entailment"], [2]),
        "dev": ((["Dana Reeve died at 44 .", "Yet , we now are discovering ."],
                 ["Christopher Reeve had an accident .",
                  "We are discovering ."]),
                ["not_entailment", "entailment"], [2, 3]),
        "RTE.tsv": ((["Mangla was summoned ."], ["Mangla was called ."]),
                    ["0"], [2]),
    }),
    "wnli": ({
        "train.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                          ("0", "I stuck a pin through a carrot .",
                           "The carrot had a hole .", "1")),
        "dev.tsv": _tsv(("index", "sentence1", "sentence2", "label"),
                        ("0", "The drain is clogged with hair .",
                         "The hair has to be removed .", "0")),
        "test.tsv": _tsv(("index", "sentence1", "sentence2"),
                         ("0", "Maude and Dora had seen the trains .",
                          "Maude had seen the trains .")),
    }, {
        "train": ((["I stuck a pin through a carrot ."],
                   ["The carrot had a hole ."]), ["1"], [2]),
        "dev": ((["The drain is clogged with hair ."],
                 ["The hair has to be removed ."]), ["0"], [2]),
        "WNLI.tsv": ((["Maude and Dora had seen the trains ."],
                      ["Maude had seen the trains ."]), ["0"], [2]),
    }),
    "xnli": ({
        os.path.join("multinli", "multinli.train.zh.tsv"): _tsv(
            ("premise", "hypo", "label"),
            ("从概念上看 , 奶油收入有两个基本方面", "产品和地理位置", "neutral"),
            ("你知道在这个季节", "你失去了东西", "contradictory")),
        "xnli.dev.tsv": _tsv(_XNLI_DEV_HEADER,
                             _xnli_dev("de", "neutral", "Er sagte .",
                                       "Er rief ."),
                             _xnli_dev("zh", "entailment", "他说 , 妈妈 , 我回来了 .",
                                       "他回来了 ."),
                             _xnli_dev("en", "neutral", "He said .",
                                       "He called .")),
    }, {
        "train": ((["从概念上看 , 奶油收入有两个基本方面", "你知道在这个季节"],
                   ["产品和地理位置", "你失去了东西"]),
                  ["neutral", "contradiction"], [2, 3]),
        "dev": ((["他说 , 妈妈 , 我回来了 ."], ["他回来了 ."]), ["entailment"],
                [3]),
    }),
}


def test_every_task_has_its_files():
  assert set(TASK_FILES) == set(glue.TASK_NAMES)


@pytest.mark.parametrize("name", glue.TASK_NAMES)
def test_reads_each_task_in_its_layout(tmp_path, name):
  files, expected = TASK_FILES[name]
  data_dir = _write_files(tmp_path, files)
  task = glue.get_task(name)
  layouts = [("train", task.train)] + list(task.dev)
  assert [split for split, _ in layouts] + [f for f, _ in task.test] == list(
      expected)
  for split, layout in layouts:
    texts, labels, lines = expected[split]
    data = glue.read_examples(task, layout, data_dir)
    assert data.path == os.path.join(data_dir, layout.file)
    assert data.text_columns == task.text_columns
    assert len(task.text_columns) == len(texts)
    assert data.texts == texts
    assert data.labels == labels
    assert data.line_numbers == lines
    y = glue.targets(task, data)
    if task.is_regression:
      assert y.dtype == np.float32
      np.testing.assert_array_equal(y, np.float32([float(v) for v in
                                                  labels]))
    else:
      assert y.dtype == np.int32
      assert [task.labels[i] for i in y] == labels
  for file, layout in task.test:
    texts, ids, lines = expected[file]
    data = glue.read_test(task, layout, data_dir)
    assert data.texts == texts
    assert data.ids == ids
    assert data.line_numbers == lines
    assert len(data) == len(ids)


def test_the_task_table():
  expected = {
      "cola": ("CoLA", glue.BINARY_LABELS, ("matthews_corrcoef",),
               ["CoLA.tsv"]),
      "sst-2": ("SST-2", glue.BINARY_LABELS, ("accuracy",), ["SST-2.tsv"]),
      "mrpc": ("MRPC", glue.BINARY_LABELS, ("accuracy", "f1"), ["MRPC.tsv"]),
      "sts-b": ("STS-B", None, ("pearson", "spearman"), ["STS-B.tsv"]),
      "qqp": ("QQP", glue.BINARY_LABELS, ("accuracy", "f1"), ["QQP.tsv"]),
      "mnli": ("MNLI", ("contradiction", "entailment", "neutral"),
               ("accuracy",), ["MNLI-m.tsv", "MNLI-mm.tsv"]),
      "qnli": ("QNLI", ("entailment", "not_entailment"), ("accuracy",),
               ["QNLI.tsv"]),
      "rte": ("RTE", ("entailment", "not_entailment"), ("accuracy",),
              ["RTE.tsv"]),
      "wnli": ("WNLI", ("0", "1"), ("accuracy",), ["WNLI.tsv"]),
      "xnli": ("XNLI", ("contradiction", "entailment", "neutral"),
               ("accuracy",), []),
  }
  assert glue.TASK_NAMES == tuple(expected)
  for name, (title, labels, metrics, submissions) in expected.items():
    task = glue.get_task(name)
    assert (task.name, task.title, task.labels, task.metrics) == (
        name, title, labels, metrics)
    assert [file for file, _ in task.test] == submissions
    assert task.is_regression == (name == "sts-b")
    assert set(task.metrics) <= set(glue_metrics.METRICS)
  assert glue.get_task("mnli").text_columns == tsv.PAIR_COLUMNS
  assert glue.get_task("cola").text_columns == tsv.SINGLE_COLUMNS
  assert [n for n, _ in glue.get_task("mnli").dev] == [
      "dev_matched", "dev_mismatched"]
  assert [l.file for _, l in glue.get_task("mnli").test] == [
      "test_matched.tsv", "test_mismatched.tsv"]


def test_get_task_ignores_case_and_rejects_unknown_names():
  assert glue.get_task("MNLI") is glue.TASKS["mnli"]
  assert glue.get_task("STS-B") is glue.TASKS["sts-b"]
  with pytest.raises(ValueError, match=r"one of cola, sst-2.*Received: "
                                       r"name='sst'"):
    glue.get_task("sst")


def test_xnli_in_another_language(tmp_path):
  task = glue.get_task("xnli", xnli_language="de")
  assert task.train.file == os.path.join("multinli", "multinli.train.de.tsv")
  assert task.dev[0][1].keep == (0, "de")
  data_dir = _write_files(tmp_path, {
      "xnli.dev.tsv": TASK_FILES["xnli"][0]["xnli.dev.tsv"]})
  data = glue.read_examples(task, task.dev[0][1], data_dir)
  assert data.texts == (["Er sagte ."], ["Er rief ."])
  assert data.line_numbers == [2]
  with pytest.raises(glue.GlueError, match=r"multinli\.train\.de\.tsv: no "
                                           r"such file"):
    glue.read_examples(task, task.train, data_dir)
  assert glue.xnli_task() == glue.get_task("xnli")
  for language in ("", "../zh", " zh"):
    with pytest.raises(ValueError, match="XNLI language code"):
      glue.xnli_task(language)


def test_labels_come_from_the_task_not_the_file(tmp_path):
  """A training file without some classes still maps each label to the
  task's class: 'neutral' is MNLI's class 2 even where it is the only one."""
  task = glue.get_task("mnli")
  data_dir = _write_files(tmp_path, {"train.tsv": _tsv(
      _MNLI_TRAIN_HEADER, _mnli_train(0, "a .", "b .", "neutral"),
      _mnli_train(1, "c .", "d .", "neutral"))})
  data = glue.read_examples(task, task.train, data_dir)
  np.testing.assert_array_equal(glue.targets(task, data), [2, 2])


def test_the_layouts_minimum_field_counts():
  assert glue.get_task("mnli").train.min_fields == 11  # The label after 9.
  assert glue.get_task("cola").train.min_fields == 4
  assert glue.get_task("qqp").test[0][1].min_fields == 3
  assert glue.get_task("xnli").dev[0][1].min_fields == 8


@pytest.mark.parametrize("name, file, text, message", [
    ("rte", "train.tsv", None, r"train\.tsv: no such file"),
    ("rte", "dev.tsv", "",
     r"dev\.tsv: the file is empty; expected a header line"),
    ("rte", "dev.tsv", _tsv(("index", "sentence1", "sentence2", "label")),
     r"dev\.tsv: no examples$"),
    ("cola", "train.tsv", _tsv(("gj04", "1", "", "fine ."), ("gj04", "1")),
     r"train\.tsv line 2: expected at least 4 tab-separated fields \(CoLA "
     r"train\.tsv\), found 2"),
    ("mnli", "dev_matched.tsv",
     _tsv(_MNLI_DEV_HEADER, _mnli_dev(0, "a .", "b .", "neutral")[:10]),
     r"dev_matched\.tsv line 2: expected at least 11 tab-separated fields"),
    ("mnli", "dev_mismatched.tsv",
     _tsv(_MNLI_DEV_HEADER, _mnli_dev(0, "a .", "b .", "entailment"),
          _mnli_dev(1, "a .", "b .", "neutrall")),
     r"dev_mismatched\.tsv line 3: unknown label 'neutrall'; MNLI has the "
     r"labels 'contradiction', 'entailment', 'neutral'"),
    ("sst-2", "train.tsv", _tsv(("sentence", "label"), ("good .", " ")),
     r"train\.tsv line 2: empty label"),
    ("sts-b", "dev.tsv", _tsv(_STSB_HEADER, _stsb(0, "a .", "b .", "high")),
     r"dev\.tsv line 2: the score 'high' is not a finite number \(STS-B is a "
     r"regression\)"),
    ("sts-b", "train.tsv", _tsv(_STSB_HEADER, _stsb(0, "a .", "b .", "2"),
                                _stsb(1, "a .", "b .", "nan")),
     r"train\.tsv line 3: the score 'nan' is not a finite number"),
    ("qqp", "test.tsv", _tsv(("id", "question1", "question2"),
                             (" ", "a ?", "b ?")),
     r"test\.tsv line 2: empty index \(field 0\)"),
    ("xnli", "xnli.dev.tsv", _tsv(_XNLI_DEV_HEADER,
                                  _xnli_dev("de", "neutral", "a .", "b .")),
     r"xnli\.dev\.tsv: no examples of the language 'zh' \(field 0\)"),
], ids=["missing_file", "empty_file", "header_only", "short_row",
        "mnli_short_row", "unknown_label", "empty_label", "stsb_not_a_number",
        "stsb_nan", "empty_index", "no_language_rows"])
def test_bad_input_names_the_file_and_line(tmp_path, name, file, text,
                                            message):
  task = glue.get_task(name)
  layouts = dict([(task.train.file, task.train)] +
                 [(l.file, l) for _, l in task.dev + task.test])
  if text is not None:
    _write_files(tmp_path, {file: text})
  layout = layouts[file]
  with pytest.raises(glue.GlueError) as info:
    if layout.label_field is None:
      glue.read_test(task, layout, str(tmp_path))
    else:
      glue.targets(task, glue.read_examples(task, layout, str(tmp_path)))
  assert re.search(message, str(info.value)), str(info.value)
  assert str(info.value).startswith(os.path.join(str(tmp_path), file))
  assert "\n" not in str(info.value)
  assert isinstance(info.value, tsv.TsvError)  # So a ValueError.


def test_readers_refuse_the_wrong_kind_of_layout(tmp_path):
  task = glue.get_task("rte")
  with pytest.raises(ValueError, match="must have a label"):
    glue.read_examples(task, task.test[0][1], str(tmp_path))
  with pytest.raises(ValueError, match="must be a test layout"):
    glue.read_test(task, task.train, str(tmp_path))


# === Metrics ===


def test_accuracy_and_f1_by_hand():
  labels = [1, 1, 1, 0, 0, 1, 0, 1]
  predictions = [1, 0, 1, 1, 0, 1, 0, 0]
  # tp 3, fn 2, fp 1, tn 2: precision 3/4, recall 3/5.
  assert glue_metrics.accuracy(labels, predictions) == pytest.approx(5 / 8)
  precision, recall = 3 / 4, 3 / 5
  assert glue_metrics.f1(labels, predictions) == pytest.approx(
      2 * precision * recall / (precision + recall))
  assert glue_metrics.f1([0, 0, 1], [0, 0, 0]) == 0.0  # No positive call.


def _mcc(labels, predictions):
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  tp = np.sum((labels == 1) & (predictions == 1))
  tn = np.sum((labels == 0) & (predictions == 0))
  fp = np.sum((labels == 0) & (predictions == 1))
  fn = np.sum((labels == 1) & (predictions == 0))
  return (tp * tn - fp * fn) / np.sqrt(
      float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))


@pytest.mark.parametrize("labels, predictions", [
    ([1, 1, 1, 0, 0, 1, 0, 1], [1, 0, 1, 1, 0, 1, 0, 0]),
    ([1, 0, 1, 0], [0, 1, 0, 1]),
    ([1, 1, 0, 0, 1], [1, 1, 0, 0, 1]),
], ids=["mixed", "all_wrong", "all_right"])
def test_matthews_corrcoef_equals_its_formula(labels, predictions):
  assert glue_metrics.matthews_corrcoef(labels, predictions) == (
      pytest.approx(_mcc(labels, predictions)))


def test_matthews_corrcoef_of_constant_predictions_is_0():
  assert glue_metrics.matthews_corrcoef([1, 0, 1], [1, 1, 1]) == 0.0


def test_pearson_and_spearman_against_numpy():
  labels = np.array([0.0, 1.5, 2.5, 2.5, 4.0, 5.0])
  scores = np.array([0.3, 1.0, 3.5, 2.0, 2.8, 4.9])
  assert glue_metrics.pearson(labels, scores) == pytest.approx(
      np.corrcoef(labels, scores)[0, 1])
  # Spearman: Pearson of the ranks, tied labels sharing their mean rank.
  label_ranks = np.array([1, 2, 3.5, 3.5, 5, 6])
  score_ranks = np.array([1, 2, 5, 3, 4, 6])
  assert glue_metrics.spearman(labels, scores) == pytest.approx(
      np.corrcoef(label_ranks, score_ranks)[0, 1])
  assert glue_metrics.spearman(labels, labels ** 3) == pytest.approx(1.0)


def test_correlations_of_a_constant_are_nan_without_a_warning(recwarn):
  assert np.isnan(glue_metrics.pearson([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))
  assert np.isnan(glue_metrics.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
  assert not recwarn.list


def test_compute():
  assert glue_metrics.compute(("f1", "accuracy"), [1, 0, 1, 1],
                              [1, 0, 0, 1]) == dict(f1=0.8, accuracy=0.75)
  with pytest.raises(ValueError, match="Unknown metric 'auc'"):
    glue_metrics.compute(("accuracy", "auc"), [1], [1])
  with pytest.raises(ValueError, match="2 labels, 1 predictions"):
    glue_metrics.compute(("accuracy",), [1, 0], [1])
  with pytest.raises(ValueError, match="non-empty"):
    glue_metrics.compute(("accuracy",), [], [])


# === Predictions, evaluation, submission files ===


def test_predictions_and_evaluate():
  mrpc, cola, stsb = (glue.get_task(n) for n in ("mrpc", "cola", "sts-b"))
  logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5], [1.0, 0.0]])
  np.testing.assert_array_equal(glue.predictions(mrpc, logits), [1, 0, 1, 0])
  assert glue.evaluate(mrpc, [1, 0, 0, 0], logits) == pytest.approx(
      dict(accuracy=0.75, f1=2 / 3))
  # CoLA: its Matthews correlation, and accuracy as the original reports.
  result = glue.evaluate(cola, [1, 0, 0, 0], logits)
  assert list(result) == ["matthews_corrcoef", "accuracy"]
  assert result["matthews_corrcoef"] == pytest.approx(
      _mcc([1, 0, 0, 0], [1, 0, 1, 0]))
  scores = np.array([[0.5], [1.5], [4.0]], np.float32)
  np.testing.assert_array_equal(glue.predictions(stsb, scores),
                                [0.5, 1.5, 4.0])
  result = glue.evaluate(stsb, [1.0, 2.0, 3.0], scores)
  assert list(result) == ["pearson", "spearman"]
  assert result["pearson"] == pytest.approx(
      np.corrcoef([1.0, 2.0, 3.0], [0.5, 1.5, 4.0])[0, 1])
  assert result["spearman"] == pytest.approx(1.0)


def test_submission_files_in_the_glue_format():
  mnli = glue.get_task("mnli")
  test = glue.TestData("test_mismatched.tsv", mnli.text_columns,
                       (["a", "b", "c"], ["d", "e", "f"]), ["0", "1", "2"],
                       [2, 3, 4])
  probabilities = np.array([[0.1, 0.2, 0.7], [0.8, 0.1, 0.1],
                            [0.2, 0.5, 0.3]])
  assert glue.submission_tsv(mnli, test, probabilities) == (
      "index\tprediction\n0\tneutral\n1\tcontradiction\n2\tentailment\n")
  stsb = glue.get_task("sts-b")
  test = glue.TestData("test.tsv", stsb.text_columns, (["a", "b"], ["c", "d"]),
                       ["0", "1"], [2, 3])
  text = glue.submission_tsv(stsb, test, np.array([[3.25], [0.1234567]]))
  assert text == "index\tprediction\n0\t3.25\n1\t0.123457\n"
  with pytest.raises(ValueError, match=r"one row per test example \(2 in "
                                       r"test\.tsv\). Received: 3 rows"):
    glue.submission_tsv(stsb, test, np.zeros([3, 1]))


# === The command line ===


def _glue_dir(tmp_path, name):
  return _write_files(tmp_path / name, TASK_FILES[name][0])


def _fake_source(tmp_path):
  """Source flags that pass the flag checks; never loaded (the data and the
  output files are checked first)."""
  encoder = tmp_path / "encoder"
  encoder.mkdir(exist_ok=True)
  return [f"--encoder={encoder}", f"--preprocessor={encoder}"]


@pytest.mark.parametrize("flags, message", [
    (["--task_name=mnli", "--data_dir={dir}", "--output_dir=o",
      "--train_file=t.tsv"],
     "--task_name reads the task's files from --data_dir; drop --train_file"),
    (["--task_name=mnli", "--output_dir=o"], "--data_dir is required"),
    (["--task_name=mnli", "--data_dir={dir}"], "--output_dir is required"),
    (["--task_name=mnli", "--data_dir={dir}/none", "--output_dir=o"],
     "--data_dir: {dir}/none is not a directory"),
    (["--train_file=t.tsv", "--eval_file=d.tsv", "--do_predict"],
     "--do_predict: only with --task_name"),
    (["--train_file=t.tsv", "--eval_file=d.tsv", "--data_dir={dir}",
      "--output_dir=o"], "--data_dir, --output_dir: only with --task_name"),
    (["--task_name=mnli", "--data_dir={dir}", "--output_dir=o",
      "--xnli_language=de"], "--xnli_language is for --task_name=xnli only"),
    (["--task_name=xnli", "--data_dir={dir}", "--output_dir=o",
      "--do_predict"], "--do_predict: XNLI has no test set to predict"),
    (["--task_name=xnli", "--data_dir={dir}", "--output_dir=o",
      "--xnli_language=../de"], "--xnli_language must be an XNLI language"),
    (["--task_name=sst", "--data_dir={dir}", "--output_dir=o"],
     "task_name"),
], ids=["mixed_with_files", "no_data_dir", "no_output_dir", "missing_dir",
        "predict_without_task", "task_flags_without_task", "xnli_language",
        "xnli_predict", "bad_language", "unknown_task"])
def test_bad_task_flags_exit_2(tmp_path, capsys, flags, message):
  flags = [f.replace("{dir}", str(tmp_path)) for f in flags]
  code = rc.main(["run_classifier", f"--export_path={tmp_path / 'out'}"] +
                 flags + _fake_source(tmp_path))
  err = capsys.readouterr().err
  assert code == 2, err
  assert message.replace("{dir}", str(tmp_path)) in err
  assert len(err.strip().splitlines()) == 1


def test_task_name_is_case_insensitive(tmp_path):
  values = rc.parse_flags(["run_classifier", "--task_name=STS-B",
                           f"--data_dir={tmp_path}", "--output_dir=o",
                           "--export_path=x"] + _fake_source(tmp_path))
  assert values.task_name == "sts-b"


def test_bad_task_data_exits_2_before_loading_a_model(tmp_path, capsys):
  data_dir = _write_files(tmp_path / "RTE", dict(
      TASK_FILES["rte"][0], **{"test.tsv": _tsv(
          ("index", "sentence1", "sentence2"), ("0", "a ."))}))
  code = rc.main(["run_classifier", "--task_name=rte",
                  f"--data_dir={data_dir}", f"--output_dir={tmp_path / 'o'}",
                  "--do_predict", f"--export_path={tmp_path / 'out'}"] +
                 _fake_source(tmp_path))
  err = capsys.readouterr().err
  assert code == 2
  assert re.search(r"test\.tsv line 2: expected at least 3 tab-separated "
                   r"fields \(RTE test\.tsv\), found 2", err), err
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("existing", ["eval_results.json", "MNLI-mm.tsv"])
def test_refuses_to_overwrite_results_before_training(tmp_path, capsys,
                                                      existing):
  output_dir = tmp_path / "results"
  output_dir.mkdir()
  (output_dir / existing).write_text("keep")
  code = rc.main(["run_classifier", "--task_name=mnli",
                  f"--data_dir={_glue_dir(tmp_path, 'mnli')}",
                  f"--output_dir={output_dir}", "--do_predict",
                  f"--export_path={tmp_path / 'out'}"] +
                 _fake_source(tmp_path))
  err = capsys.readouterr().err
  assert code == 2
  assert f"--output_dir: {output_dir / existing} already exists; pass " \
         "--overwrite" in err
  assert os.listdir(output_dir) == [existing]
  assert not (tmp_path / "out").exists()


def test_undefined_correlations_are_written_as_null():
  assert json.dumps(rc._json_value(  # pylint: disable=protected-access
      dict(dev=dict(pearson=float("nan"), loss=0.5, examples=1)),
  )) == '{"dev": {"pearson": null, "loss": 0.5, "examples": 1}}'


def test_refuses_an_output_dir_inside_the_export(tmp_path, capsys):
  code = rc.main(["run_classifier", "--task_name=mnli",
                  f"--data_dir={_glue_dir(tmp_path, 'mnli')}",
                  f"--output_dir={tmp_path / 'out' / 'results'}",
                  f"--export_path={tmp_path / 'out'}"] +
                 _fake_source(tmp_path))
  assert code == 2
  assert "is inside --export_path" in capsys.readouterr().err


# === Fine-tuning runs ===

_TRAINING_FLAGS = ["--epochs=2", "--batch_size=4", "--seq_length=24",
                   "--learning_rate=1e-3", "--classifier_dropout=0"]


def _all_sentences(name):
  files, _ = TASK_FILES[name]
  data_dir_rows = [line.split("\t") for text in files.values()
                   for line in text.splitlines()]
  return [field for row in data_dir_rows for field in row]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
  """A random tiny MobileBERT whose vocabulary covers the MNLI and STS-B
  files' words (`helpers.write_tiny_text_model`)."""
  return helpers.write_tiny_text_model(
      tmp_path_factory.mktemp("model"),
      [s.lower() for s in _all_sentences("mnli") + _all_sentences("sts-b")])


def _checkpoint_flags(model):
  return [f"--bert_config_file={model['config_file']}",
          f"--init_checkpoint={model['checkpoint']}",
          f"--vocab_file={model['vocab_file']}", "--do_lower_case"]


def _read_results(output_dir):
  with open(os.path.join(output_dir, rc.RESULTS_FILE), encoding="utf-8") as f:
    return json.load(f)


def _read_submission(path):
  with open(path, encoding="utf-8") as f:
    rows = [line.split("\t") for line in f.read().splitlines()]
  assert rows[0] == ["index", "prediction"]
  return rows[1:]


def _server(export_path):
  """A function: examples -> the exported model's outputs (NumPy)."""
  serve = tf.saved_model.load(export_path).signatures["serving_default"]
  return lambda data: {k: v.numpy() for k, v in serve(**{
      c: tf.constant(t) for c, t in zip(data.text_columns, data.texts)
  }).items()}


@pytest.mark.slow
def test_mnli_from_the_command_line_scores_both_dev_sets_and_predicts(
    tiny_model, tmp_path):
  task = glue.get_task("mnli")
  data_dir = _glue_dir(tmp_path, "mnli")
  export_path, output_dir = str(tmp_path / "out"), str(tmp_path / "results")
  done = subprocess.run(
      [sys.executable, "-m", "training.run_classifier", "--task_name=MNLI",
       f"--data_dir={data_dir}", f"--output_dir={output_dir}",
       "--do_predict", f"--export_path={export_path}"] +
      _checkpoint_flags(tiny_model) + _TRAINING_FLAGS,
      cwd=workspace.REPO, env=workspace.environment(), capture_output=True,
      text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  assert sorted(os.listdir(output_dir)) == [
      "MNLI-m.tsv", "MNLI-mm.tsv", "eval_results.json"]
  for epoch in (1, 2):
    assert re.search(rf"Epoch {epoch} evaluation: dev_matched accuracy "
                     r"[\d.]+, loss [\d.]+; dev_mismatched accuracy",
                     done.stdout), done.stdout

  results = _read_results(output_dir)
  assert results["task"] == "mnli" and results["epochs"] == 2
  assert len(results["per_epoch"]) == 2
  assert results["results"] == results["per_epoch"][-1]
  serve = _server(export_path)
  with open(os.path.join(export_path, rc.LABELS_FILE)) as f:
    assert f.read().split() == list(task.labels)
  # Each dev set's numbers are those of its own file: recomputed from the
  # exported model's probabilities.
  assert list(results["results"]) == ["dev_matched", "dev_mismatched"]
  for name, layout in task.dev:
    data = glue.read_examples(task, layout, data_dir)
    y = glue.targets(task, data)
    probabilities = serve(data)["probabilities"]
    got = results["results"][name]
    assert got["examples"] == len(data)
    assert got["accuracy"] == pytest.approx(
        np.mean(probabilities.argmax(-1) == y))
    assert got["loss"] == pytest.approx(
        -np.mean(np.log(probabilities[np.arange(len(y)), y])), rel=1e-4)
  # The submission files: each test file's indexes in order, the exported
  # model's labels.
  for file, layout in task.test:
    data = glue.read_test(task, layout, data_dir)
    rows = _read_submission(os.path.join(output_dir, file))
    assert [index for index, _ in rows] == data.ids
    assert [label for _, label in rows] == list(
        serve(data)["label"].astype(str))


@pytest.mark.slow
def test_stsb_is_a_regression_with_a_score_export(tiny_model, tmp_path):
  task = glue.get_task("sts-b")
  data_dir = _glue_dir(tmp_path, "sts-b")
  output_dir = str(tmp_path / "results")
  values = rc.parse_flags(
      ["run_classifier", "--task_name=sts-b", f"--data_dir={data_dir}",
       f"--output_dir={output_dir}", "--do_predict",
       f"--export_path={tmp_path / 'out'}"] + _checkpoint_flags(tiny_model) +
      _TRAINING_FLAGS)
  result = rc.finetune(values, log=lambda line: None)
  assert result.label_names is None and result.eval_accuracy is None
  assert result.max_abs_diff <= rc.VERIFY_ATOL
  assert len(result.history["loss"]) == 2
  assert "accuracy" not in result.history
  assert result.output_files == [os.path.join(output_dir, f) for f in
                                 ("eval_results.json", "STS-B.tsv")]
  assert not os.path.exists(os.path.join(result.export_path, rc.LABELS_FILE))

  dev = glue.read_examples(task, task.dev[0][1], data_dir)
  serve = _server(result.export_path)
  served = serve(dev)
  assert list(served) == ["score"]
  scores, y = served["score"], glue.targets(task, dev)
  assert scores.shape == (len(dev),) and scores.dtype == np.float32
  in_memory = result.model([tf.constant(t) for t in dev.texts]).numpy()
  np.testing.assert_allclose(scores, in_memory[:, 0], atol=1e-5)
  got = _read_results(output_dir)["results"]["dev"]
  assert got == pytest.approx(result.eval_results["dev"])
  assert got["examples"] == 3
  # The metrics of the exported model's scores: Pearson, Spearman (the
  # Pearson of the ranks; the labels have no ties) and the squared error.
  assert got["pearson"] == pytest.approx(np.corrcoef(scores, y)[0, 1],
                                         rel=1e-4)
  ranks = [np.argsort(np.argsort(v)) for v in (scores, y)]
  assert got["spearman"] == pytest.approx(np.corrcoef(*ranks)[0, 1])
  assert got["loss"] == pytest.approx(np.mean((scores - y) ** 2), rel=1e-4)

  test = glue.read_test(task, task.test[0][1], data_dir)
  rows = _read_submission(os.path.join(output_dir, "STS-B.tsv"))
  assert [index for index, _ in rows] == test.ids
  np.testing.assert_allclose([float(v) for _, v in rows],
                             serve(test)["score"],
                             rtol=1e-5, atol=1e-6)
