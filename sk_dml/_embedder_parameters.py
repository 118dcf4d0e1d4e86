"""The parameters every embedder shares: their documentation and their constraints.

The loss-dependent ones (``residual``, ``normalize``, ``learning_rate``) are documented apart:
:class:`~sk_dml.embedders.MetricEmbedder` and the tuple embedders take "auto" (the loss's
choice, :attr:`sk_dml.criteria.Loss.embedder_defaults`), a named embedder its loss's values.
"""

import os
from numbers import Integral, Real

import torch

from ._sklearn_compat import Interval, StrOptions
from .nets import ACTIVATIONS

#: The parameters of every embedder but the loss-dependent ones, and the fitted attributes.
SHARED_PARAMETERS_DOC = """
    n_components : int, default=64
        Dimension of the embedding (ignored when ``module`` is given).
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Widths of the MLP's hidden layers.
    activation : {"relu", "gelu", "tanh", "leaky_relu", "elu", "silu"}, default="relu"
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer.
    module : torch.nn.Module or callable, default=None
        Your own network instead of the MLP: a module (deep-copied at each fresh fit) or a
        callable ``n_inputs -> nn.Module``. It comes after the input layer, so it must map
        (batch, n_inputs) float32 to (batch, dim), where ``n_inputs`` counts the standardised
        numeric columns, their missing indicators and the categorical and text columns' embedding
        widths (``n_features`` for a numeric table without missing values).
    categorical_features : "from_dtype", None, or array-like of str, int or bool, \
default="from_dtype"
        The columns learned as categories (entity embeddings) rather than numbers, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`: "from_dtype" takes a
        DataFrame's category and bool columns, and decides each string/object column from its
        data: text (as ``text_features``) when more than 5% of its non-missing cells hold a
        level seen fewer than ``max(min_frequency, 2)`` times at fit (free text, names, IDs,
        postcodes, dates), else a category (short codes whose levels repeat);
        ``schema_.describe()`` reports the choice and why. A numeric array has no categorical
        column. Or column names, indices, or a boolean mask (those columns are categories, as
        given); None: none. Categorical columns of a numeric array hold numbers, read as
        labels (``1`` and ``1.0`` are one level).
    text_features : None or array-like of str or int, default=None
        Columns read as text, by character n-grams, whatever their dtype (string columns with
        many rare levels already are, under ``categorical_features="from_dtype"``): for free
        text where most values are unique and copies have typos (names, streets, phone
        numbers, IDs). Each cell, lower-cased (a whole number as its digits), is cut into
        character 2- to 4-grams within words, each hashed into one of 65536 buckets
        (scikit-learn's ``HashingVectorizer(analyzer="char_wb")``). The untrained network reads
        the cell as its TF-IDF: inverse document frequencies are learned at fit (stored in
        ``schema_``), each bucket's vector starts as its idf times a random N(0, 1) vector, and
        a cell's vector is the sum of its n-grams' vectors scaled to unit length, so dot
        products start as TF-IDF cosine similarities (within about 1 / sqrt(width)),
        ``category_embedding_dim`` wide ("auto": 32). Column names or indices; a column listed
        here is never categorical, and may not be listed in ``categorical_features``. A numeric
        column listed here must hold whole numbers; a column with no text at all is an error.
    min_frequency : int, default=5
        Levels of a categorical column seen fewer times than this at fit share one embedding
        with levels first seen after fit ("rare or unseen"): too few rows to learn their own.
        A column whose kept levels name fewer than 10% of its non-missing rows (identifiers,
        dates) gets a UserWarning naming it: read it as text (``text_features``) instead.
    category_embedding_dim : "auto", int or dict, default="auto"
        Width of each categorical column's embedding. "auto":
        ``min(32, round(1.6 * (n_levels + 2) ** 0.56))`` (fastai's rule of thumb, capped);
        an int for every column; or a dict from column name (or index) to width, "auto" for
        the columns it does not list. "auto" gives a text column 32.
    batch_size : int, default=256
        Rows per training batch.
    samples_per_class : int, default=4
        Rows of each class that travel together in a batch (K of the P x K batches); every row
        is still seen once per epoch. ``batch_size`` must be a multiple of it. With a
        continuous target, groups of K rows with neighbouring targets travel together.
    max_epochs : int, default=60
        Upper bound on the passes over the training data.
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        "cosine" anneals the learning rate to 0 over the ``max_epochs`` of a ``fit`` (each
        warm-started fit anneals anew); training still stops early on a plateau, and reaching
        ``max_epochs`` is expected, so no ConvergenceWarning. "constant" keeps it fixed and
        warns when ``max_epochs`` ends training before a plateau, as MLPClassifier does.
        ``partial_fit`` always uses the constant rate.
    weight_decay : float, default=0.0
        AdamW weight decay.
    early_stopping : bool or "auto", default="auto"
        Hold out part of the training data (``validation_split``), score it before training
        and after each epoch, stop when the score stops improving and keep the best weights:
        the untrained network is a candidate too, so the fitted model is never worse on the
        held-out data than its own start. "auto": do so unless the data are too small to hold
        anything out (then train on all of it, as with False). False: train on all the data
        and stop when the training loss stops improving.
    validation_split : {"rows", "classes"}, default="rows"
        What ``early_stopping`` holds out. "rows": ``validation_fraction`` of the rows
        (stratified), scored by leave-one-out precision@1, which selects for the classes seen
        in training. "classes": ``validation_fraction`` of the classes (at least 2) with all
        their rows, scored by leave-one-out MAP@R among them: this selects for classes never
        seen in training (Musgrave et al. 2020); it helped on digits but not on letter
        (``benchmarks/results/unseen_classes.md``). It is not the default because it costs
        the classes seen in training: the held-out
        classes are never trained on and training stops as soon as transfer stops improving
        (on letter, NormalizedSoftmaxEmbedder's 5-NN accuracy is 0.959 instead of 0.971;
        ``benchmarks/results/accuracy.md``). Other kinds of supervision hold out their rows or
        tuples.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
        Epochs without an improvement larger than ``tol`` before stopping.
    tol : float, default=1e-4
        What counts as an improvement. Of the validation score (with ``early_stopping``;
        scores lie in [0, 1]): more than ``tol``. Of the training loss (without): a decrease
        of more than ``tol`` times the best loss so far in absolute value, so the stop does
        not depend on the loss's scale (its margin, temperature or number of terms). With
        ``verbose``, a fit that stops at a plateau says so.
    warm_start : bool, default=False
        Continue from the fitted network (and optimizer) instead of starting afresh.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialisation, dropout and batch sampling: a fit is exactly
        reproducible on CPU, also while other fits run in other threads (dropout draws from
        the fit's own generator). In a custom ``module``, use :class:`sk_dml.nets.Dropout` for
        that: ``torch.nn.Dropout`` draws from torch's process-wide generator, which the fit
        seeds, so it is reproducible only while one fit runs at a time.
    verbose : "auto", int or bool, default="auto"
        A progress bar over the epochs with the loss and the validation score of each:
        "auto" shows it when the fit will take more than a few seconds (as its first epochs
        say) and stderr is a terminal or a notebook, so quick fits, scripts writing to a file
        and tests stay silent; 1 or True always, 0 or False never.
    device : str or torch.device, default="auto"
        "auto" trains on CUDA when available, else on the CPU; or "cpu", "cuda", "cuda:1", ...
        Under ``torchrun`` (torch.distributed), "auto" and "cuda" mean each rank's own GPU.
    checkpoint_dir : str or path-like, default=None
        Save the whole training state to this folder after every epoch of ``fit``, atomically,
        and resume from it: a fit that was killed and is run again (same estimator, same data)
        continues from its last completed epoch and, with a fixed ``random_state``, ends with
        the same weights as an uninterrupted fit. The file is named by a fingerprint of the
        parameters and data, so fits never pick up each other's, and it is deleted when the fit
        ends normally. ``partial_fit`` does not checkpoint.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, in eval mode.
    device_ : torch.device
        Where it was trained.
    embedding_metric_ : str
        The distance between embeddings that the loss optimised; use it as
        ``KNeighborsClassifier(metric=embedding_metric_)`` after ``transform``.
    n_iter_ : int
        Epochs run (over all calls, with ``warm_start``/``partial_fit``).
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_scores_ : list of float or None
        Validation score per epoch when part of the data was held out (None otherwise):
        precision@1 of held-out rows, or MAP@R of held-out classes; for a continuous target,
        leave-one-out 5-NN regression R^2; for pairs, their ROC AUC; for triplets, the
        fraction whose constraint holds.
    best_loss_ : float
        Lowest epoch loss.
    best_score_ : float or None
        Best validation score, the untrained network's included (None without held-out
        data).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names; ``transform`` then matches columns by name.
    schema_ : sk_dml.tabular.TableSchema
        The columns seen at fit: which are numeric and which categorical, their dtypes, each
        categorical column's levels and embedding width, the text columns, their n-gram
        settings and inverse document frequencies, why each column is read as it is
        (``schema_.describe()``), and which numeric columns had missing values (those get a
        missing indicator, standardised). Numeric columns are standardised with the
        training rows' mean and standard deviation inside the network (``module_.inputs``).
"""

#: ``residual``, ``normalize`` and ``learning_rate`` as "auto": the loss's choice.
LOSS_CHOSEN_PARAMETERS_DOC = """
    residual : bool or "auto"
        Embed with ``linear(x) + mlp(x)`` (:class:`sk_dml.nets.ResidualEmbedding`), started as
        the PCA rotation of the training rows, instead of a plain MLP: the untrained network is
        the classical representation (the standardised input, rotated), training starts from
        the input's own distances and keeps what distinguishes classes it never saw. "auto"
        takes the loss's choice (``loss.embedder_defaults``): True for the proxy-anchor,
        multi-similarity, normalised softmax, CosFace, ArcFace and log-ratio losses, False for
        the pair and triplet losses, which end more accurate on the classes seen in training
        from a plain MLP (see the user guide, "Evaluating an embedding, and classes never seen
        in training").
    normalize : bool or "auto"
        L2-normalise the output, so embeddings lie on the unit sphere. "auto" takes the
        loss's choice: True for the margin losses (triplet, contrastive), whose margins then
        have a fixed scale, and for the similarity and softmax losses (proxy-anchor,
        multi-similarity, normalised softmax, CosFace, ArcFace); False for N-pair and lifted
        structure, whose log-sum-exp needs unbounded distances, and for log-ratio, whose
        distance ratios do.
    learning_rate : float or "auto"
        AdamW learning rate (the starting one, with the cosine schedule). "auto" takes the
        loss's choice: 3e-4 with the residual start (low enough to refine it rather than
        replace it), 3e-3 for the pair and triplet losses. A loss's own parameters (proxies,
        class weights) may train at a multiple of it (``loss.parameter_settings``)."""

SHARED_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "hidden_layer_sizes": [list, tuple],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "residual": ["boolean", StrOptions({"auto"})],
    "normalize": ["boolean", StrOptions({"auto"})],
    "module": [None, torch.nn.Module, callable],
    "categorical_features": [None, StrOptions({"from_dtype"}), "array-like"],
    "text_features": [None, "array-like"],
    "min_frequency": [Interval(Integral, 1, None, closed="left")],
    "category_embedding_dim": [
        StrOptions({"auto"}),
        Interval(Integral, 1, None, closed="left"),
        dict,
    ],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "learning_rate_schedule": [StrOptions({"cosine", "constant"})],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_split": [StrOptions({"rows", "classes"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "warm_start": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose", StrOptions({"auto"})],
    "device": [str, torch.device],
    "checkpoint_dir": [None, str, os.PathLike],
}
