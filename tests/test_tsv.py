"""Tests for `training.tsv`: GLUE-style TSV files."""

import re

import numpy as np
import pytest

from training import tsv


def _write(tmp_path, content, name="data.tsv"):
  path = tmp_path / name
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.write_bytes(content)
  return str(path)


def test_single_sentences_with_extra_columns_in_any_order(tmp_path):
  path = _write(tmp_path, "label\tid\tsentence\n1\ta\tgood film .\n"
                          "0\tb\tdull .\n")
  data = tsv.read_tsv(path)
  assert data.path == path
  assert data.text_columns == ("sentence",)
  assert data.texts == (["good film .", "dull ."],)
  assert data.labels == ["1", "0"]
  assert data.line_numbers == [2, 3]
  assert len(data) == 2


def test_sentence_pairs(tmp_path):
  path = _write(tmp_path, "sentence1\tsentence2\tlabel\n"
                          "A man sleeps .\tA person rests .\tentailment\n"
                          "It rains .\tThe sun shines .\tcontradiction\n")
  data = tsv.read_tsv(path)
  assert data.text_columns == ("sentence1", "sentence2")
  assert data.texts == (["A man sleeps .", "It rains ."],
                        ["A person rests .", "The sun shines ."])
  assert data.labels == ["entailment", "contradiction"]


def test_pair_columns_win_over_sentence(tmp_path):
  path = _write(tmp_path, "sentence\tsentence1\tsentence2\tlabel\n"
                          "s\ta\tb\t1\n")
  data = tsv.read_tsv(path)
  assert data.text_columns == tsv.PAIR_COLUMNS
  assert data.texts == (["a"], ["b"])


def test_quotes_are_ordinary_characters(tmp_path):
  # GLUE files are unquoted: csv's default quoting would drop these quotes
  # and join the lines after the unbalanced one.
  path = _write(tmp_path, 'sentence\tlabel\n"quoted" .\t1\n'
                          'he said "no\t0\nit \'s fine .\t1\n')
  data = tsv.read_tsv(path)
  assert data.texts == (['"quoted" .', 'he said "no', "it 's fine ."],)
  assert data.labels == ["1", "0", "1"]
  assert data.line_numbers == [2, 3, 4]


def test_crlf_bom_blank_lines_and_no_final_newline(tmp_path):
  path = _write(tmp_path, b"\xef\xbb\xbfsentence\tlabel\r\nfine .\t1\r\n"
                          b"\r\n  \t \r\nbad .\t 0 \r\nlast .\t1")
  data = tsv.read_tsv(path)
  assert data.texts == (["fine .", "bad .", "last ."],)
  assert data.labels == ["1", "0", "1"]  # Labels are stripped.
  assert data.line_numbers == [2, 5, 6]


def test_non_ascii_text(tmp_path):
  path = _write(tmp_path, "sentence\tlabel\nçà et là — 東京 .\t1\n")
  assert tsv.read_tsv(path).texts == (["çà et là — 東京 ."],)


@pytest.mark.parametrize("content, message", [
    ("", r"data\.tsv: the file is empty"),
    ("\n \n\t\n", r"data\.tsv: the file is empty"),
    ("\nsentence\tlabel\nx\t1\n", r"data\.tsv line 1: blank"),
    ("sentence\tscore\nfine .\t1\n",
     r"data\.tsv line 1: missing column 'label'; the header has "
     r"\['sentence', 'score'\]"),
    ("text\tscore\nfine .\t1\n",
     r"data\.tsv line 1: missing column 'sentence', 'label'"),
    ("sentence1\tlabel\na\t1\n",
     r"data\.tsv line 1: missing column 'sentence2'"),
    ("sentence\tlabel\n", r"data\.tsv: no examples after the header"),
    ("sentence\tlabel\ngood .\t1\nno label here\n",
     r"data\.tsv line 3: expected 2 tab-separated fields \(sentence, label\),"
     r" found 1"),
    ("sentence\tlabel\n\ngood .\t1\nfine .\t \n",
     r"data\.tsv line 4: empty label"),
    (b"sentence\tlabel\ngood .\t1\n\xff\t1\n",
     r"data\.tsv line 3: not valid UTF-8"),
], ids=["empty", "only_blank", "blank_header", "missing_label",
        "missing_both", "missing_pair_column", "header_only", "short_row",
        "empty_label", "bad_utf8"])
def test_errors_name_the_file_and_line(tmp_path, content, message):
  path = _write(tmp_path, content)
  with pytest.raises(tsv.TsvError) as info:
    tsv.read_tsv(path)
  assert re.search(message, str(info.value)), str(info.value)
  assert "\n" not in str(info.value)
  assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
  with pytest.raises(tsv.TsvError, match=r"nothere\.tsv: no such file"):
    tsv.read_tsv(tmp_path / "nothere.tsv")


@pytest.mark.parametrize("labels, expected", [
    (["10", "2", "1", "2"], ["1", "2", "10"]),
    (["pos", "neg", "neutral"], ["neg", "neutral", "pos"]),
    (["1", "b", "a"], ["1", "a", "b"]),
], ids=["numeric", "strings", "mixed"])
def test_label_names_and_ids(tmp_path, labels, expected):
  path = _write(tmp_path, "sentence\tlabel\n" + "".join(
      f"s{i}\t{label}\n" for i, label in enumerate(labels)))
  data = tsv.read_tsv(path)
  names = tsv.label_names(data)
  assert names == expected
  ids = tsv.label_ids(data, names)
  assert ids.dtype == np.int32
  assert [names[i] for i in ids] == labels


def test_one_label_is_not_a_classification(tmp_path):
  data = tsv.read_tsv(_write(tmp_path, "sentence\tlabel\na\t1\nb\t1\n"))
  with pytest.raises(tsv.TsvError, match=r"all examples have the label '1'"):
    tsv.label_names(data)


def test_unknown_label_names_the_line(tmp_path):
  data = tsv.read_tsv(_write(tmp_path, "sentence\tlabel\na\t1\n\nb\t2\n"))
  with pytest.raises(tsv.TsvError,
                     match=r"data\.tsv line 4: unknown label '2'; the "
                           r"training data has the labels '0', '1'"):
    tsv.label_ids(data, ["0", "1"])


def test_unknown_label_names_where_the_labels_come_from(tmp_path):
  data = tsv.read_tsv(_write(tmp_path, "sentence\tlabel\na\tmaybe\n"))
  with pytest.raises(tsv.TsvError,
                     match=r"data\.tsv line 2: unknown label 'maybe'; RTE "
                           r"has the labels 'entailment', 'not_entailment'"):
    tsv.label_ids(data, ["entailment", "not_entailment"], source="RTE")


def test_read_rows_keeps_every_field_and_skips_blank_rows(tmp_path):
  # No header is assumed: the first row is returned like the others.
  path = _write(tmp_path, b"\xef\xbb\xbfgj04\t1\t\t\"so\" it goes .\r\n"
                          b"\t \n\nx\n a \tb\t\n")
  assert tsv.read_rows(path) == [
      (1, ["gj04", "1", "", '"so" it goes .']), (4, ["x"]),
      (5, [" a ", "b", ""])]
  assert tsv.read_rows(_write(tmp_path, "", name="empty.tsv")) == []


@pytest.mark.parametrize("content, message", [
    (None, r"nothere\.tsv: no such file"),
    (b"a\tb\n\xff\n", r"nothere\.tsv line 2: not valid UTF-8"),
], ids=["missing", "bad_utf8"])
def test_read_rows_errors(tmp_path, content, message):
  if content is not None:
    _write(tmp_path, content, name="nothere.tsv")
  with pytest.raises(tsv.TsvError, match=message):
    tsv.read_rows(tmp_path / "nothere.tsv")
