"""The command line's guards: no traceback reaches a user, outputs never overwrite inputs, bounded reports."""

import argparse
import os
import signal

import numpy as np
import pytest

import deltaprop.cli as cli
from deltaprop import report
from deltaprop.cli.common import UsageError
from deltaprop.cli.paths import check_outputs
from deltaprop.errors import DataError, SaveError


# ------------------------------------------------------------- no traceback
def run_raising(monkeypatch, exc, debug=False):
    """``cli.main`` with a command that raises ``exc``; returns the exit status."""

    def command(args):
        raise exc

    class Parser:
        def parse_args(self, argv):
            ns = argparse.Namespace(command="boom", func=command)
            if debug:
                ns.debug = True
            return ns

    monkeypatch.setattr(cli, "build_parser", Parser)
    return cli.main([])


def one_line(capsys):
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.rstrip("\n")


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), ValueError("bad\nvalue"),
                                 OverflowError("int too large"), TypeError("unhashable"), KeyError("k")])
def test_unexpected_exception_is_one_line_and_status_70(monkeypatch, capsys, exc):
    monkeypatch.delenv("DELTAPROP_DEBUG", raising=False)
    assert run_raising(monkeypatch, exc) == 70
    line = one_line(capsys)
    assert line.startswith(f"deltaprop: internal error: {type(exc).__name__}: ")
    assert line.endswith(" (run with --debug for the traceback)")


def test_internal_error_message_is_escaped_and_cut(monkeypatch, capsys):
    monkeypatch.delenv("DELTAPROP_DEBUG", raising=False)
    assert run_raising(monkeypatch, ValueError("\x1b[31mred\x07" + "x" * 10_000)) == 70
    line = one_line(capsys)
    assert "\x1b" not in line and "\\x1b[31mred\\x07" in line
    assert len(line) < 420  # 300 characters of message, the prefix and the note


@pytest.mark.parametrize("how", ["env", "flag"])
def test_debug_prints_the_traceback(monkeypatch, capsys, how):
    if how == "env":
        monkeypatch.setenv("DELTAPROP_DEBUG", "1")
    else:
        monkeypatch.delenv("DELTAPROP_DEBUG", raising=False)
    assert run_raising(monkeypatch, RecursionError("deep"), debug=how == "flag") == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RecursionError: deep" in err


def test_expected_errors_keep_their_lines_and_statuses(monkeypatch, capsys):
    assert run_raising(monkeypatch, DataError("d.csv: row 3 has 2 cells\x1b")) == 1
    assert one_line(capsys) == "deltaprop: error: d.csv: row 3 has 2 cells\\x1b"
    assert run_raising(monkeypatch, UsageError("--epochs must be positive")) == 2
    assert one_line(capsys) == "deltaprop: error: --epochs must be positive"
    assert run_raising(monkeypatch, FileNotFoundError(2, "No such file or directory", "x.csv")) == 1
    assert one_line(capsys) == "deltaprop: error: x.csv: No such file or directory"
    with pytest.raises(SystemExit):
        run_raising(monkeypatch, SystemExit(3))


class FakeInterrupted(KeyboardInterrupt):  # as deltaprop.errors.TrainingInterrupted
    def __init__(self, message, signum=None, checkpoint=None):
        super().__init__(message)
        self.signum, self.checkpoint = signum, checkpoint


def test_interruptions(monkeypatch, capsys):
    assert run_raising(monkeypatch, KeyboardInterrupt()) == 130
    assert one_line(capsys) == "deltaprop: interrupted"
    exc = FakeInterrupted("training interrupted at epoch 3 by SIGINT", signum=signal.SIGINT)
    assert run_raising(monkeypatch, exc) == 130
    assert one_line(capsys) == "deltaprop: interrupted: training interrupted at epoch 3 by SIGINT"
    exc = FakeInterrupted("training interrupted at epoch 3 by SIGTERM; checkpoint written to ck/e3",
                          signum=signal.SIGTERM, checkpoint="ck/e3")
    assert run_raising(monkeypatch, exc) == 143
    line = one_line(capsys)
    assert line.startswith("deltaprop: interrupted: training interrupted at epoch 3 by SIGTERM")
    assert line.endswith("; to continue, run the same command with --resume")


# ------------------------------------------------------------- check_outputs
@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    (tmp_path / "m.safetensors").write_bytes(b"model")
    return tmp_path


def test_distinct_paths_pass(files):
    check_outputs({"--data": "d.csv", "model": "m.safetensors", "--config": None, "--labels": "-"},
                  {"--out": "p.csv", "--log": "log.csv", "--plot": None, "--checkpoint-dir": "ck"})
    check_outputs({"--data": "digits"}, {"--out": "digits.csv"})  # a built-in set's name is not a file


@pytest.mark.parametrize("out, how", [("d.csv", ""), ("./d.csv", ""), ("link.csv", " (through a symbolic link)"),
                                      ("hard.csv", " (a hard link)")])
def test_an_output_over_an_input_is_refused(files, out, how):
    os.symlink("d.csv", "link.csv")
    os.link("d.csv", "hard.csv")
    with pytest.raises(UsageError) as info:
        check_outputs({"--data": "d.csv", "model": "m.safetensors"}, {"--log": None, "--out": out})
    assert str(info.value) == f"--out {out} is the same file as --data d.csv{how}; choose another output path"
    assert (files / "d.csv").read_text() == "a,b\n1,2\n"


def test_outputs_colliding_with_each_other_or_the_model(files):
    with pytest.raises(UsageError, match=r"^--log ./new.csv is the same file as --out new.csv; "):
        check_outputs({}, {"--out": "new.csv", "--log": "./new.csv"})
    with pytest.raises(UsageError, match=r"^--out m.safetensors is the same file as the model m.safetensors;"):
        check_outputs({"model": "m.safetensors"}, {"--out": "m.safetensors"})


def test_folders(files):
    os.mkdir("ck")
    with pytest.raises(SaveError, match=r"--out nowhere/p.csv: the folder .*nowhere does not exist"):
        check_outputs({}, {"--out": "nowhere/p.csv"})
    with pytest.raises(UsageError, match="--out ck is a folder; give a file path"):
        check_outputs({}, {"--out": "ck"})
    with pytest.raises(UsageError, match="--out ck/m.safetensors is inside --checkpoint-dir ck"):
        check_outputs({}, {"--out": "ck/m.safetensors", "--checkpoint-dir": "ck"})
    with pytest.raises(UsageError, match="--checkpoint-dir d.csv is a file, not a folder"):
        check_outputs({"--data": "d.csv"}, {"--checkpoint-dir": "d.csv"})
    check_outputs({"--resume": "ck", "--data": "ck/../d.csv"}, {"--checkpoint-dir": "ck", "--out": "m2.st"})


# ------------------------------------------------------------- bounded reports
def test_printable_escapes_controls_and_cuts():
    assert report.printable("plain label") == "plain label"
    assert report.printable("a\x1b[2Jb\x00\x7f\x9b") == "a\\x1b[2Jb\\x00\\x7f\\x9b"
    assert report.printable("rtl\u202eevil\u2028") == "rtl\\u202eevil\\u2028"
    assert report.printable("x" * 100) == "x" * 39 + "…"
    assert report.printable("\x01" * 100, limit=10) == "\\x01\\x01\\…"
    assert report.printable(12) == "12"


def test_confusion_and_per_class_summaries_for_many_classes():
    rng = np.random.default_rng(0)
    k = 5000
    true = rng.integers(0, k, 20_000)
    pred = np.where(rng.random(20_000) < 0.7, true, rng.integers(0, k, 20_000))
    true[:30], pred[:30] = 3, 7  # the largest confusion
    matrix = report.confusion_matrix(true, pred, k)
    names = [f"class\x1b{i}" for i in range(k)]
    text = report.format_confusion(matrix, names)
    lines = text.splitlines()
    assert len(lines) < 60 and "\x1b" not in text
    assert lines[0] == "5000 classes: the full matrix is in --json"
    assert lines[3] == "  3 class\\x1b3 -> 7 class\\x1b7: 30"
    table = report.format_per_class(matrix, names)
    assert len(table.splitlines()) < 60 and "\x1b" not in table
    assert table.startswith("5000 classes: the 10 with the lowest F1 are shown")


def test_small_reports_stay_full_tables():
    matrix = report.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    lines = report.format_confusion(matrix, ["a", "b\n", "c"]).splitlines()
    assert len(lines) == 4 and lines[2].startswith("1 b\\x0a")
    assert len(report.format_per_class(matrix).splitlines()) == 5
