"""The embedding networks: an input layer for tables, then a small MLP by default, or any torch
module a user brings."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import numpy as np
import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "Dropout",
    "L2Normalize",
    "ResidualEmbedding",
    "TableEmbedding",
    "TableInput",
    "build_module",
    "dropout_generator",
    "make_mlp",
    "set_sparse_gradients",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class L2Normalize(nn.Module):
    """Scale each row to unit Euclidean norm (embeddings on the unit sphere)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=1)


_DROPOUT_GENERATOR: ContextVar[torch.Generator | None] = ContextVar(
    "sk_dml_dropout_generator", default=None
)


@contextlib.contextmanager
def dropout_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Make :class:`Dropout` draw its masks from ``generator`` in this thread (or task).

    A fit trains inside this with a generator seeded from its ``random_state``, so its masks
    do not depend on what other threads draw from torch's process-wide generator.
    """
    token = _DROPOUT_GENERATOR.set(generator)
    try:
        yield
    finally:
        _DROPOUT_GENERATOR.reset(token)


class Dropout(nn.Dropout):
    """``torch.nn.Dropout`` whose masks come from the generator of :func:`dropout_generator`.

    Outside such a context (a loop of your own) it is torch's Dropout, drawing from torch's
    process-wide generator.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = _DROPOUT_GENERATOR.get()
        if generator is None or not self.training or self.p == 0:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=generator)
        return x * keep / (1 - self.p)


def make_mlp(
    n_features: int,
    n_components: int,
    hidden_layer_sizes: Sequence[int] = (256,),
    activation: str = "relu",
    dropout: float = 0.0,
    normalize: bool = True,
) -> nn.Sequential:
    """``Linear -> activation [-> Dropout]`` per hidden layer, a final ``Linear`` to
    ``n_components``, then optionally :class:`L2Normalize` (:class:`Dropout`: a fit's masks
    come from its own generator)."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_components))
    if normalize:
        layers.append(L2Normalize())
    return nn.Sequential(*layers)


class ResidualEmbedding(nn.Module):
    """``linear(x) + mlp(x)``, started as the principal-component projection of the inputs.

    The linear path starts as the PCA rotation of the training rows (an isometry when
    ``n_components >= n_features``, the top principal axes otherwise) and the MLP's last layer
    starts at zero, so before training the embedding *is* the input, up to rotation, and its
    distances are the input's distances. Training then bends it only as far as the loss asks,
    which keeps the information that distinguishes classes never seen in training (plain deep
    embeddings collapse each training class and lose it; see Musgrave et al. 2020, "A Metric
    Learning Reality Check").
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int] = (512, 512),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = True,
    ):
        super().__init__()
        self.linear = nn.Linear(n_features, n_components, bias=False)
        self.mlp = make_mlp(
            n_features, n_components, hidden_layer_sizes, activation, dropout, normalize=False
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.normalize = L2Normalize() if normalize else nn.Identity()

    @torch.no_grad()
    def init_from_data(self, X: torch.Tensor) -> ResidualEmbedding:
        """Set the linear path to the PCA rotation of the rows of ``X`` (centred)."""
        X = torch.tensor(np.array(X, dtype=np.float64))  # a copy: X may be read-only
        _, _, vh = torch.linalg.svd(X - X.mean(0), full_matrices=False)  # rows: principal axes
        weight = torch.zeros_like(self.linear.weight, dtype=torch.float64)
        k = min(len(vh), weight.shape[0])
        weight[:k] = vh[:k]
        self.linear.weight.copy_(weight)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.linear(x) + self.mlp(x))


class TableInput(nn.Module):
    """The input layer for an encoded table (:meth:`sk_dml.tabular.TableSchema.encode`).

    Its input holds ``n_numeric`` numeric columns (NaN where missing), then one float code per
    categorical column. Each number is standardised with the training rows' mean and standard
    deviation (``mean`` and ``scale``, buffers set by :meth:`fit_statistics`); a missing one
    becomes 0, the mean, and the columns listed in ``missing_indicators`` add a 0/1 feature
    saying so (with ``standardize_indicators``, standardised like a number: (indicator -
    missing rate) / its standard deviation, as a scaler after an imputer would give it). Each
    code is looked up in its column's embedding table (entity embeddings, Guo & Berkhahn
    2016), started at N(0, 1 / width) draws (one-hot's scale: each level about unit norm,
    two levels about sqrt(2) apart), rows 0 ("missing") and 1 ("rare or unseen") at zero.
    Then come, per text column, ``text_widths[j]`` columns of n-gram bucket ids + 1 (0:
    padding), read by an ``nn.EmbeddingBag`` of ``text_n_buckets + 1`` rows (row 0, padding,
    is left out):

    - with ``text_idf`` (schema version 2), the TF-IDF start: bucket ``b``'s vector starts as
      ``idf[b] * r_b`` with ``r_b`` torch's N(0, 1) draws (divided by the mean idf of the
      buckets seen at fit; buckets never seen at fit start at zero), a cell's vector is the
      *sum* of its n-gram occurrences' vectors (term frequency times idf) scaled to unit
      Euclidean norm. Before training it is a Gaussian random projection of the cell's TF-IDF
      vector, normalised, so dot products between cells approximate TF-IDF cosine
      similarities (Johnson-Lindenstrauss: within about ``1 / sqrt(width)``). A missing cell,
      or one of unseen n-grams only, gives zeros.
    - without (version 1, models fitted before), the *mean* of its n-grams' vectors, started
      at N(0, 1) draws: a random projection of its n-gram counts (fastText's subword vectors,
      Bojanowski et al. 2017).

    The output concatenates the numbers, the indicators, the category embeddings and the text
    embeddings: ``out_features`` wide.

    The embedding tables and bags have sparse gradients (``sparse=True``): a step updates only
    the rows its batch used, so a column with a million levels costs no more per step than one
    with ten. Sparse gradients need an optimizer that takes them (``torch.optim.SparseAdam``, or
    the trainer's ``LazyAdam``, the same update in less time).
    """

    def __init__(
        self,
        n_numeric: int,
        missing_indicators: Sequence[int] = (),
        table_sizes: Sequence[int] = (),
        embedding_dims: Sequence[int] = (),
        text_widths: Sequence[int] = (),
        text_embedding_dims: Sequence[int] = (),
        text_n_buckets: int = 2**16,
        text_idf: Sequence | None = None,
        standardize_indicators: bool = False,
    ):
        super().__init__()
        self.n_numeric = n_numeric
        self.register_buffer("mean", torch.zeros(n_numeric))
        self.register_buffer("scale", torch.ones(n_numeric))
        self.register_buffer(
            "missing_indicators", torch.tensor(list(missing_indicators), dtype=torch.long)
        )
        self.embeddings = nn.ModuleList(
            nn.Embedding(size, dim, sparse=True)
            for size, dim in zip(table_sizes, embedding_dims, strict=True)
        )
        with torch.no_grad():
            for table in self.embeddings:
                # N(0, 1 / width): each level a vector of norm about 1, so two levels start
                # about sqrt(2) apart, as in a one-hot encoding, and a column weighs about
                # as much as a standardised number.
                table.weight.mul_(table.embedding_dim**-0.5)
                table.weight[:2] = 0  # "missing" and "rare": neutral until trained
        self.standardize_indicators = bool(standardize_indicators)
        if self.standardize_indicators:
            n_indicators = len(missing_indicators)
            self.register_buffer("indicator_mean", torch.zeros(n_indicators))
            self.register_buffer("indicator_scale", torch.ones(n_indicators))
        self.text_widths = [int(w) for w in text_widths]
        self.tfidf = text_idf is not None
        self.text_embeddings = nn.ModuleList(
            nn.EmbeddingBag(
                text_n_buckets + 1,
                dim,
                mode="sum" if self.tfidf else "mean",
                padding_idx=0,
                sparse=True,
            )
            for dim in text_embedding_dims
        )
        if len(self.text_widths) != len(self.text_embeddings):
            raise ValueError("text_widths and text_embedding_dims must have equal lengths")
        if self.tfidf:
            if len(text_idf) != len(self.text_embeddings):
                raise ValueError("text_idf needs one table per text column")
            for bag, idf in zip(self.text_embeddings, text_idf, strict=True):
                _start_as_tfidf(bag.weight, idf)
        self.in_features = n_numeric + len(self.embeddings) + sum(self.text_widths)
        self.out_features = (
            n_numeric + len(missing_indicators) + sum(embedding_dims) + sum(text_embedding_dims)
        )

    @classmethod
    def for_schema(cls, schema) -> TableInput:
        """The input layer for tables of ``schema`` (a :class:`sk_dml.tabular.TableSchema`)."""
        return cls(
            len(schema.numeric),
            schema.missing_indicators,
            schema.table_sizes,
            schema.embedding_dims,
            schema.max_ngrams,
            schema.text_embedding_dims,
            schema.text_n_buckets,
            text_idf=[schema.text_idf(j) for j in range(len(schema.text))]
            if schema.version >= 2
            else None,
            standardize_indicators=schema.version >= 2,
        )

    @torch.no_grad()
    def fit_statistics(self, X) -> TableInput:
        """Set ``mean`` and ``scale`` from the numeric columns of the encoded rows ``X``,
        ignoring missing values (a constant column gets scale 1, as in StandardScaler), and,
        with ``standardize_indicators``, each missing indicator's mean (the missing rate) and
        standard deviation."""
        numbers = torch.as_tensor(np.asarray(X)[:, : self.n_numeric], dtype=torch.float64)
        present = ~torch.isnan(numbers)
        count = present.sum(0).clamp(min=1)
        mean = torch.where(present, numbers, 0).sum(0) / count
        variance = torch.where(present, (numbers - mean) ** 2, 0).sum(0) / count
        scale = variance.sqrt()
        scale[scale <= 10 * torch.finfo(torch.float64).eps * mean.abs().clamp(min=1)] = 1.0
        self.mean.copy_(mean)
        self.scale.copy_(scale)
        if self.standardize_indicators and len(self.missing_indicators):
            rate = (~present[:, self.missing_indicators.cpu()]).double().mean(0)
            spread = (rate * (1 - rate)).sqrt()
            self.indicator_mean.copy_(rate)
            self.indicator_scale.copy_(torch.where(spread > 0, spread, 1.0))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numbers = x[:, : self.n_numeric]
        missing = torch.isnan(numbers)
        parts = [torch.where(missing, 0.0, (numbers - self.mean) / self.scale)]
        if len(self.missing_indicators):
            flags = missing[:, self.missing_indicators].to(x.dtype)
            if self.standardize_indicators:
                flags = (flags - self.indicator_mean) / self.indicator_scale
            parts.append(flags)
        start = self.n_numeric + len(self.embeddings)
        codes = x[:, self.n_numeric : start].long()
        parts += [table(codes[:, j]) for j, table in enumerate(self.embeddings)]
        for width, bag in zip(self.text_widths, self.text_embeddings, strict=True):
            cells = bag(x[:, start : start + width].long())
            parts.append(nn.functional.normalize(cells, dim=1) if self.tfidf else cells)
            start += width
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


@torch.no_grad()
def _start_as_tfidf(weight: torch.Tensor, idf) -> None:
    """Scale the rows of a text column's bag (row ``b + 1``: bucket ``b``) by the buckets'
    inverse document frequencies ``idf`` (0 for a bucket unseen at fit), divided by their mean
    over the seen buckets, so the rows keep torch's N(0, 1) scale on average. Nothing to do on
    torch's "meta" device (a model being loaded: its weights come from the file)."""
    if weight.is_meta:
        return
    idf = torch.as_tensor(np.asarray(idf, dtype=np.float64))
    seen = idf > 0
    factor = idf / idf[seen].mean() if bool(seen.any()) else idf
    weight[1:] *= factor.to(weight.dtype).unsqueeze(1)


class TableEmbedding(nn.Module):
    """``body(inputs(x))``: the network an embedder trains, its :class:`TableInput` first.

    ``body`` is the MLP (or :class:`ResidualEmbedding`, or a user's module), which receives
    ``inputs.out_features`` columns.
    """

    def __init__(self, inputs: TableInput, body: nn.Module):
        super().__init__()
        self.inputs = inputs
        self.body = body

    @torch.no_grad()
    def init_from_data(self, X) -> TableEmbedding:
        """Start a :class:`ResidualEmbedding` body as the PCA of the encoded rows ``X`` as the
        input layer presents them (nothing to do for other bodies)."""
        if isinstance(self.body, ResidualEmbedding):
            device = self.inputs.mean.device
            X = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=device)
            self.body.init_from_data(self.inputs(X).cpu().numpy())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.inputs(x))


def set_sparse_gradients(module: nn.Module, sparse: bool) -> None:
    """Give the embedding tables (and bags) in ``module`` sparse (or dense) gradients. Dense
    ones are for data-parallel training, whose NCCL all-reduce takes no sparse tensors."""
    for table in module.modules():
        if isinstance(table, nn.Embedding | nn.EmbeddingBag):
            table.sparse = sparse


def build_module(
    module: nn.Module | Callable[[int], nn.Module] | None,
    n_features: int,
    residual: bool = False,
    **mlp_params,
) -> nn.Module:
    """The network an estimator trains.

    ``module`` may be ``None`` (the MLP of ``make_mlp(n_features, **mlp_params)``, or with
    ``residual`` a :class:`ResidualEmbedding` of the same layers), a
    ``torch.nn.Module`` (deep-copied, so the estimator's parameter is never trained in place) or a
    callable ``n_features -> nn.Module`` (called once per fresh fit).
    """
    if module is None:
        return (ResidualEmbedding if residual else make_mlp)(n_features, **mlp_params)
    if isinstance(module, nn.Module):
        return copy.deepcopy(module)
    built = module(n_features)
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module or a callable returning one; the callable "
            f"returned {type(built).__name__}."
        )
    return built
