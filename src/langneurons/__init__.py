"""langneurons: find language-specific neurons of a causal LM and steer its output language.

The API, the CLI's engine (imported lazily so `langneurons --help` stays fast):

    from langneurons import find, load_run, select, Intervention, open_run, sample_records
    info = find("runs/builtin")                              # record + expertise
    info, expertise = load_run("runs/builtin")
    de = select(expertise, "de", 2000, "both")               # the neurons
    steerable = open_run("runs/builtin")
    samples = sample_records(steerable, [Intervention("de", 2000)], "unconditional", list(range(1, 101)))
"""

from importlib import import_module

__version__ = "0.1.0"

from .errors import LangneuronsError  # noqa: E402

API = {
    "find": "run", "load_run": "run", "load_model": "model", "discover_sites": "sites",
    "load_corpus": "data", "build_labels": "data", "select": "expertise",
    "average_precision": "expertise", "Intervention": "intervene", "resolve": "intervene",
    "steer": "intervene", "hooks": "record",
    "open_run": "steering", "sample_records": "steering", "sweep": "steering",
    "perplexity": "evaluate", "language_share": "evaluate", "fluency": "evaluate",
    "pareto_front": "frontier", "write_report": "report",
    "activation_sites": "sites", "select_lape": "lape", "compare": "compare", "stability": "stability",
}

__all__ = ["LangneuronsError", "__version__", *API]


def __getattr__(name: str):
    if name in API:
        return getattr(import_module(f".{API[name]}", __name__), name)
    raise AttributeError(f"module 'langneurons' has no attribute {name!r}")
