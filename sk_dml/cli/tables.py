"""Tables in and out: CSV (optionally gzipped) or Parquet, chosen by the file name's ending.

Every output file is written under a temporary name and moved into place only when complete,
so a failed command leaves no output behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zlib
from pathlib import Path

import pandas as pd

from .errors import CLIError, one_line

# File name endings of the tables read and written, and their format.
TABLE_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
NEEDS_PYARROW = "Parquet needs pyarrow: pip install 'sk_dml[parquet]'"
# The output name of a table written to standard output, as CSV.
STDOUT = "-"
# What pandas and pyarrow raise on a file they cannot read: ValueError covers pandas' parser
# errors, UnicodeDecodeError and pyarrow's ArrowInvalid; OSError covers gzip's BadGzipFile and
# pyarrow's IO errors.
_UNREADABLE = (ValueError, KeyError, OSError, EOFError, zlib.error, TypeError, NotImplementedError)


def table_format(path) -> str:
    """``"csv"`` or ``"parquet"``, from the file name's ending (``-``, standard output: CSV)."""
    if str(path) == STDOUT:
        return "csv"
    name = Path(path).name.lower()
    for ending, fmt in TABLE_FORMATS.items():
        if name.endswith(ending):
            return fmt
    raise CLIError(f"{path}: unknown file type; use one of {', '.join(TABLE_FORMATS)}")


def read_table(path) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet table with at least one row.

    Raises
    ------
    CLIError
        When the file is missing, of an unknown type, unreadable or empty.
    """
    fmt = table_format(path)
    if not Path(path).is_file():
        raise CLIError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path}: the file is empty") from None
    except ImportError as error:
        raise CLIError(f"{path}: {NEEDS_PYARROW} ({one_line(error)})") from None
    except _UNREADABLE as error:
        raise CLIError(f"{path}: cannot read it as {fmt.upper()} ({one_line(error)})") from error
    if len(frame) == 0:
        raise CLIError(f"{path}: the table has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def check_output(path) -> Path:
    """Refuse an output path in a missing folder, or that is a folder, before any work."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CLIError(f"{path}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"{path}: is a folder, not a file name")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``, moved onto ``path`` only if the block succeeds;
    an ``OSError`` while writing (a full disk, a read-only folder) is a :class:`CLIError`."""
    path = check_output(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise CLIError(f"{path}: cannot write it ({one_line(error)})") from error
    finally:
        tmp.unlink(missing_ok=True)


def write_table(frame: pd.DataFrame, path) -> None:
    """Write ``frame`` (without its index) as CSV, gzipped CSV or Parquet, atomically; as CSV
    on standard output when ``path`` is ``-``."""
    if str(path) == STDOUT:
        frame.to_csv(sys.stdout, index=False)
        return
    fmt = table_format(path)
    with atomic_output(path) as tmp:
        if fmt == "csv":
            gzipped = str(path).lower().endswith(".gz")
            frame.to_csv(tmp, index=False, compression="gzip" if gzipped else None)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError as error:
                raise CLIError(f"{path}: {NEEDS_PYARROW} ({one_line(error)})") from None
