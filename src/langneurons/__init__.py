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
    "find": "find.run", "load_run": "find.info", "RunInfo": "find.info", "load_model": "model",
    "discover_sites": "model",
    "load_corpus": "data", "build_labels": "data", "select": "find.tables",
    "average_precision": "find.expertise", "Intervention": "steer.intervene", "Setting": "steer.intervene",
    "Decoding": "steer.decoding", "resolve": "steer.apply",
    "steer": "steer.apply", "hooks": "hooks",
    "open_run": "steer.steerable", "sample_records": "steer.steerable", "sweep": "steer.sweep",
    "perplexity": "steer.evaluate", "language_share": "steer.evaluate", "fluency": "steer.evaluate",
    "pareto_front": "steer.frontier", "write_report": "report.write",
    "activation_sites": "model", "select_lape": "find.tables", "compare": "study.compare",
    "stability": "study.stability",
}

__all__ = ["LangneuronsError", "__version__", *API]


def __getattr__(name: str):
    if name in API:
        return getattr(import_module(f".{API[name]}", __name__), name)
    raise AttributeError(f"module 'langneurons' has no attribute {name!r}")
