"""Real tables, written raw as CSV, for ``bench_tabular.py``: no preparation, as the PyPI packages ship them.

Every data set here comes from a package installed with the ``bench`` extra
(palmerpenguins, vega_datasets, statsmodels); nothing is downloaded. Each is
read with the package's own loader (or, for vega_datasets, pandas on the file
the package ships, so that dates stay the strings they are in the file) and
written once with ``DataFrame.to_csv(index=False)``: missing cells become
empty fields, strings stay strings, numbers are written as pandas writes them.
The files are cached in ``<cache>/tabular/`` (``common.cache_dir()``: the
``DELTAPROP_BENCH_CACHE`` folder or ``~/.cache/deltaprop-bench``), outside the
repository.

What a data set is (:class:`Table`): its CSV ``path``, the ``target`` column,
the ``task``, the columns to ``drop`` and the extra command-line flags
``cli_args`` a user would have to give (and why, in ``notes``). Only three
things are ever dropped or forced, and each is said:

* seattle-weather's ``date`` (``--drop date``): every value is a different
  day, so as a category it is one level per row and carries nothing a model
  could use on a new day; a user would derive month or season from it, which
  would be preparation, so it is left out instead;
* cars' ``Name`` (``--drop Name``): the car's make and model, 311 distinct
  values in 406 rows, an identifier rather than a category (and
  HistGradientBoosting refuses a categorical column of more than 255 values).
  cars' ``Year`` is a date string too, but of only 12 model years, which as
  categories are meaningful: it is kept;
* randhie's ``mdvis`` is a count (0, 1, 2, ...) that the command line would
  read as classes, so it is given ``--task regression``.

    python benchmarks/tabular_data.py          # write the files and list them
"""

import os
import sys
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

Table = namedtuple("Table", "name path target task drop cli_args notes")
Table.__doc__ = """One raw CSV file and how to learn from it.

name: short name; path: the CSV file; target: the column to predict; task:
"classification" or "regression"; drop: columns left out (for every model);
cli_args: extra ``deltaprop train`` flags beyond ``--drop`` (only ``--task``);
notes: one line on the source, the columns of text and the missing cells."""


def _vega_file(name):
    import vega_datasets

    return os.path.join(os.path.dirname(vega_datasets.__file__), "_data", name)


def _penguins():
    from palmerpenguins import load_penguins

    return load_penguins()


def _seattle_weather():
    import pandas as pd

    return pd.read_csv(_vega_file("seattle-weather.csv"))


def _cars():
    import pandas as pd

    return pd.read_json(_vega_file("cars.json"))


def _statsmodels(name):
    def load():
        import statsmodels.api as sm

        return getattr(sm.datasets, name).load_pandas().data

    return load


#: name -> (loader, target, task, drop, extra CLI flags, source)
SPECS = {
    "penguins": (_penguins, "species", "classification", (), (),
                 "palmerpenguins.load_penguins()"),
    "seattle-weather": (_seattle_weather, "weather", "classification", ("date",), (),
                        "vega_datasets' seattle-weather.csv; the date (one per row) is dropped"),
    "anes96": (_statsmodels("anes96"), "vote", "classification", (), (),
               "statsmodels.datasets.anes96 (vote: 0 Clinton, 1 Dole)"),
    "cars": (_cars, "Miles_per_Gallon", "regression", ("Name",), (),
             "vega_datasets' cars.json; Name (311 values in 406 rows) is dropped; "
             "Year, a date string with 12 values, is kept as a category"),
    "grunfeld": (_statsmodels("grunfeld"), "invest", "regression", (), (),
                 "statsmodels.datasets.grunfeld"),
    "randhie": (_statsmodels("randhie"), "mdvis", "regression", (), ("--task", "regression"),
                "statsmodels.datasets.randhie (a count target, so --task regression)"),
}

#: the data sets of ``--quick``: one of each task, both with text and missing cells
QUICK = ("penguins", "cars")


def folder():
    d = Path(common.cache_dir()) / "tabular"
    d.mkdir(parents=True, exist_ok=True)
    return d


def describe(df, target, drop):
    """``"344 rows, 7 features (2 text: island, sex), 19 missing cells, 0 missing targets"``."""
    features = [c for c in df.columns if c != target and c not in drop]
    text = [c for c in features if not _is_numeric(df[c])]
    missing = int(df[features].isna().sum().sum())
    return (f"{len(df)} rows, {len(features)} features ({len(text)} text{': ' + ', '.join(text) if text else ''}), "
            f"{missing} missing feature cell{'s' if missing != 1 else ''}, "
            f"{int(df[target].isna().sum())} missing targets")


def _is_numeric(column):
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def table(name):
    """The :class:`Table` of one data set, its CSV written on first use."""
    loader, target, task, drop, cli_args, source = SPECS[name]
    path = folder() / f"{name}.csv"
    if not path.exists():
        df = loader()
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    import pandas as pd

    df = pd.read_csv(path)
    return Table(name, path, target, task, tuple(drop), tuple(cli_args), f"{source}; {describe(df, target, drop)}")


def tables(names=None):
    """The :class:`Table` of each name (default: every data set), in :data:`SPECS` order."""
    names = list(SPECS) if names is None else list(names)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise ValueError(f"unknown data set {', '.join(unknown)}; the data sets are {', '.join(SPECS)}")
    return [table(n) for n in names]


if __name__ == "__main__":
    for t in tables():
        print(f"{t.name:<16} {t.task:<15} target {t.target!r:<20} {t.path}\n{'':<16} {t.notes}")
