"""Model files written by earlier versions of sk_dml still load and embed identically.

``tests/data/v1_*.safetensors`` were written by ``sk_dml.save`` of sk_dml 0.1.0 (model format
version 1, one estimator class per loss), with the embeddings they gave then in
``v1_embeddings.npz``. These files are never rewritten: they are what users have on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sk_dml

DATA = Path(__file__).parent / "data"
SAVED = {
    "triplet": ("TripletEmbedder", "euclidean"),
    "npair": ("NPairEmbedder", "cosine"),
    "proxy_anchor": ("ProxyAnchorEmbedder", "euclidean"),
}


@pytest.mark.parametrize("name", SAVED)
def test_a_version_1_model_file_loads_and_embeds_as_when_it_was_written(name):
    expected = np.load(DATA / "v1_embeddings.npz")
    model = sk_dml.load(DATA / f"v1_{name}.safetensors")
    class_name, metric = SAVED[name]
    assert type(model).__name__ == class_name
    assert model.embedding_metric_ == metric
    np.testing.assert_array_equal(model.transform(expected["X"]), expected[name])
    assert sk_dml.persistence.read_metadata(DATA / f"v1_{name}.safetensors")["extra"] == {
        "note": "sk_dml 0.1.0"
    }
