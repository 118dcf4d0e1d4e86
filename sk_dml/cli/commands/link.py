"""``sk-dml link`` and ``sk-dml match``: two tables (or one, to deduplicate) and their known
links in, a table of candidate matches out (:class:`sk_dml.linking.Linker`)."""

from __future__ import annotations

from pathlib import Path

from ...linking import Linker, default_embedder
from ...persistence import load, save
from ..errors import CLIError, one_line
from ..tables import check_output, read_table, table_format, write_table


def _linker_error(error: ValueError, source: str) -> CLIError:
    return CLIError(f"{source}: {one_line(error)}")


def _tables(args) -> tuple:
    left = read_table(args.left)
    right = None if args.right is None else read_table(args.right)
    return left, right


def _write_matches(linker: Linker, left, right, args) -> None:
    sources = args.left if right is None else f"{args.left}, {args.right}"
    try:
        matches = linker.match(left, right, k=args.k, threshold=args.threshold)
    except ValueError as error:
        raise _linker_error(error, sources) from error
    write_table(matches, args.output)
    per = f"up to {args.k or linker.n_neighbors} per record"
    kept = "" if args.threshold is None else f", probability >= {args.threshold}"
    print(f"wrote {len(matches)} candidate matches ({per}{kept}) to {args.output}")


def run_link(args) -> None:
    """Fit a Linker on LEFT, RIGHT and the links, write the matches (and the model)."""
    table_format(args.output)
    check_output(args.output)
    if args.model is not None:
        check_output(args.model)
    left, right = _tables(args)
    links = read_table(args.links)
    embedder = default_embedder()
    if args.epochs is not None:
        embedder.set_params(max_epochs=args.epochs)
    linker = Linker(embedder, key=args.key, random_state=args.random_state)
    sources = ", ".join(str(p) for p in (args.left, args.right, args.links) if p is not None)
    try:
        linker.fit(left, right, links)
    except ValueError as error:
        raise _linker_error(error, sources) from error
    print(
        f"trained on {linker.n_train_links_} of the {linker.n_links_} links "
        f"({linker.n_links_ - linker.n_train_links_} kept to calibrate the probabilities)"
    )
    if args.model is not None:
        save(linker, args.model)
        print(f"saved the linker to {args.model}")
    _write_matches(linker, left, right, args)


def run_match(args) -> None:
    """Write the matches of LEFT against RIGHT (or within LEFT) with a saved linker."""
    table_format(args.output)
    check_output(args.output)
    if not Path(args.model).is_file():
        raise CLIError(f"{args.model}: no such file")
    try:
        linker = load(args.model)
    except (ValueError, OSError) as error:
        raise CLIError(
            f"{args.model}: cannot read it as a model file ({one_line(error)})"
        ) from None
    if not isinstance(linker, Linker):
        raise CLIError(
            f"{args.model}: holds a {type(linker).__name__}, not a linker; write one with "
            "'sk-dml link ... --model FILE'"
        )
    left, right = _tables(args)
    _write_matches(linker, left, right, args)
