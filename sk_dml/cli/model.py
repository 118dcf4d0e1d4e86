"""A model file written by ``fit``: a saved embedder and the preprocessing of its input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer

from ..persistence import load, read_metadata
from .errors import CLIError, one_line
from .preprocessing import prepare, preprocess, preprocessing_from_dict


@dataclass
class Model:
    """A model file written by ``fit``: the embedder and its preprocessing."""

    path: Path
    estimator: object
    preprocessing: dict
    transformer: ColumnTransformer
    target: str

    @classmethod
    def load(cls, path) -> Model:
        """Read a model file; a file that is not one raises :class:`CLIError`."""
        path = Path(path)
        if not path.is_file():
            raise CLIError(f"{path}: no such model file")
        try:
            extra = read_metadata(path)["extra"]
            estimator = load(path)
        except (ValueError, OSError) as error:  # not a model file, damaged, ...: names the file
            raise CLIError(one_line(error)) from error
        except (TypeError, KeyError, RuntimeError) as error:
            raise CLIError(f"{path}: damaged model file ({one_line(error)})") from error
        preprocessing = extra.get("preprocessing") if isinstance(extra, dict) else None
        if not isinstance(preprocessing, dict):
            raise CLIError(
                f"{path}: the model holds no preprocessing; was it made by 'sk-dml fit'?"
            )
        try:
            transformer = preprocessing_from_dict(preprocessing)
            width = len(transformer.get_feature_names_out())
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise CLIError(
                f"{path}: damaged preprocessing in the model ({one_line(error)})"
            ) from error
        if width != estimator.n_features_in_:
            raise CLIError(
                f"{path}: damaged model: its preprocessing makes {width} features but the "
                f"embedder takes {estimator.n_features_in_}"
            )
        return cls(path, estimator, preprocessing, transformer, str(extra.get("target", "")))

    def features(self, frame: pd.DataFrame, source) -> np.ndarray:
        """The preprocessed feature matrix of ``frame``: the embedder's input."""
        prepared = prepare(
            frame, self.preprocessing["columns"], self.preprocessing["numeric"]["columns"], source
        )
        return preprocess(self.transformer, prepared, source)

    def describe(self) -> str:
        """One line: the file, the embedder, the embedding's size and metric."""
        est = self.estimator
        return (
            f"{self.path}: {type(est).__name__}, {len(est.get_feature_names_out())}-D "
            f"embedding, metric {est.embedding_metric_}"
        )
