"""``sk-dml transform``: a table's embeddings written to a table, after its key column."""

from __future__ import annotations

import sys

import pandas as pd

from ..errors import CLIError
from ..model import Model
from ..tables import STDOUT, check_output, read_table, table_format, write_table
from .common import key_of


def _key_column(args, model: Model, frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """The key column that transform writes first: ``--key``, else the model's key; none with
    ``--no-key`` or when neither names one."""
    key = key_of(args, model, frame, purpose="", instead="writes none")
    if key is None:
        return pd.DataFrame(index=range(len(frame)))
    if key in {f"emb{i}" for i in range(width)}:
        raise CLIError(f"--key {key!r}: the embedding's columns have that name")
    return frame[[key]].reset_index(drop=True)


def run_transform(args) -> None:
    """Write the embeddings of DATA's rows, columns emb0..emb{d-1}, after the key column; to
    standard output with ``-o -`` (and what was written said on stderr)."""
    to_stdout = args.output == STDOUT
    if not to_stdout:
        table_format(args.output)
        check_output(args.output)
    model = Model.load(args.model)
    frame = read_table(args.data)
    key = _key_column(args, model, frame, len(model.estimator.get_feature_names_out()))
    Z = model.embed(frame, args.data)
    embeddings = pd.DataFrame(Z, columns=[f"emb{i}" for i in range(Z.shape[1])])
    write_table(pd.concat([key, embeddings], axis=1), args.output)
    keyed = f", after the key column {key.columns[0]!r}," if key.shape[1] else ""
    where = "standard output" if to_stdout else args.output
    print(
        f"wrote {Z.shape[0]} embeddings of dimension {Z.shape[1]}{keyed} to {where}",
        file=sys.stderr if to_stdout else sys.stdout,
    )
