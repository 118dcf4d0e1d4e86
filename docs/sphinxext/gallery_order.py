"""The order of the examples in the sphinx-gallery (``within_subsection_order``)."""

# From a first pipeline to the building blocks; scripts not listed here come last, by name.
ORDER = [
    "plot_quickstart.py",
    "plot_grid_search_margin.py",
    "plot_compare_losses.py",
    "plot_mixed_types.py",
    "plot_learned_metric.py",
    "plot_hard_mining.py",
    "plot_custom_training_loop.py",
]


class ExampleOrder:
    """Sort key: position in ORDER, then file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = str(filename).rsplit("/", 1)[-1]
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self):
        return "<ExampleOrder>"
