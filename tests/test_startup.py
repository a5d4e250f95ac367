"""Start-up: ``import deltaprop``, ``deltaprop --help`` and ``--version`` import no NumPy; the lazy face's names.

Each check runs in a fresh interpreter (``sys.executable``), so that what
another test imported does not count. Nothing here is timed
(``benchmarks/bench_startup.py`` times them).
"""

import subprocess
import sys
import types

import pytest

import deltaprop as dp

#: run the command line's main in this process and print whether NumPy was imported
_MAIN = ("import sys\n"
         "from deltaprop.cli import main\n"
         "try:\n"
         "    status = main({argv!r})\n"
         "except SystemExit as exc:\n"
         "    status = exc.code\n"
         "print('STATUS', status, 'numpy' in sys.modules, file=sys.stderr)\n")
COMMANDS = ("train", "evaluate", "predict", "gradcheck", "info", "export", "report", "explain", "walkthrough")


def python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def modules_after(code):
    """The names in ``sys.modules`` after ``code`` runs in a fresh interpreter."""
    out = python(f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))")
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def run_main(argv):
    """``(exit status, numpy imported, stdout)`` of ``deltaprop.cli.main(argv)`` in a fresh interpreter."""
    out = python(_MAIN.format(argv=list(argv)))
    status, numpy = out.stderr.strip().splitlines()[-1].split()[1:]
    return int(status), numpy == "True", out.stdout


# ------------------------------------------------------------- no NumPy
@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_no_numpy(argv):
    status, numpy, stdout = run_main(argv)
    assert status == (2 if not argv else 0)
    assert not numpy
    assert stdout.startswith("usage: deltaprop") or stdout == f"deltaprop {dp.__version__}\n"


def test_import_deltaprop_imports_neither_numpy_nor_the_command_line():
    ours = modules_after("import deltaprop")
    assert "numpy" not in ours
    assert sorted(m for m in ours if m.startswith("deltaprop")) == ["deltaprop", "deltaprop._version"]


def test_version_and_errors_need_no_numpy():
    ours = modules_after("import deltaprop; deltaprop.__version__; deltaprop.DeltapropError; "
                         "import deltaprop.errors; import deltaprop.cli.config")
    assert "numpy" not in ours


@pytest.mark.parametrize("use", ["import deltaprop", "import deltaprop; deltaprop.Network",
                                 "import deltaprop; deltaprop.Network, deltaprop.Adam, deltaprop.fit"])
def test_deltaprop_adds_no_inspection_modules_beyond_numpys(use):
    """inspect, ast, pickle, ctypes, datetime and the like come with NumPy, if at all: deltaprop adds none."""
    added = modules_after(use) - modules_after("import numpy")
    heavy = {"inspect", "ast", "dis", "tokenize", "pickle", "ctypes", "datetime", "typing", "dataclasses",
             "copy", "secrets", "hashlib"}
    assert not added & heavy, sorted(added & heavy)


# ------------------------------------------------------- the lazy face
@pytest.mark.parametrize("name", dp.__all__)
def test_every_public_name_imports(name):
    out = python(f"from deltaprop import {name}; import deltaprop; assert deltaprop.{name} is {name}")
    assert out.returncode == 0, out.stderr


def test_dir_lists_every_public_name():
    assert set(dp.__all__) <= set(dir(dp))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        dp.no_such_name  # noqa: B018


@pytest.mark.parametrize("order", [
    "import deltaprop as dp; f, w = dp.gradcheck, dp.walkthrough; import deltaprop.gradcheck, deltaprop.walkthrough",
    "import deltaprop.gradcheck, deltaprop.walkthrough; import deltaprop as dp",
    "from deltaprop.gradcheck import gradcheck; from deltaprop.walkthrough import walkthrough; import deltaprop as dp",
    "from deltaprop import gradcheck, walkthrough; import deltaprop as dp",
])
def test_gradcheck_and_walkthrough_are_the_functions_whatever_is_imported_first(order):
    code = (f"{order}\nimport sys, types\n"
            "for name in ('gradcheck', 'walkthrough'):\n"
            "    value = getattr(dp, name)\n"
            "    assert isinstance(value, types.FunctionType), (name, value)\n"
            "    assert value is getattr(sys.modules['deltaprop.' + name], name)\n")
    out = python(code)
    assert out.returncode == 0, out.stderr


def test_submodules_are_attributes_as_before():
    for name in ("training", "errors", "layers", "activations", "losses", "optimizers", "checks"):
        assert isinstance(getattr(dp, name), types.ModuleType)
    assert dp.training.fit is dp.fit
    assert dp.Network.__module__ == "deltaprop.model"


# ----------------------------------------------------------- help texts
def test_main_help_lists_every_command_without_numpy():
    status, numpy, stdout = run_main(["--help"])
    assert status == 0 and not numpy
    assert "usage: deltaprop [-h] [--version] [--debug] COMMAND ..." in stdout
    assert "    export     write a model as an ONNX file" in stdout
    assert "    walkthrough" in stdout and "one forward and backward pass with its numbers" in stdout
    for command in COMMANDS:
        assert f"\n    {command}" in stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_its_help(command, capsys):
    from deltaprop.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: deltaprop {command} [-h]")
    assert "examples:\n  deltaprop " in out
    # --debug stays the last option, as when every command's options were added up front
    usage = out.split("\n\n", 1)[0]
    assert usage.rfind("[--debug]") == usage.rfind("[-") > 0


def test_a_command_gets_its_options_once(capsys):
    from deltaprop.cli.parser import build_parser

    parser = build_parser()
    for _ in range(2):
        args = parser.parse_args(["export", "m.safetensors", "--onnx", "m.onnx"])
        assert args.command == "export" and args.opset == "17" and args.func.__name__ == "cmd_export"
