"""langneurons: find language-specific neurons of a causal LM and steer its output language."""

__version__ = "0.1.0"

from .errors import LangneuronsError  # noqa: E402

__all__ = ["LangneuronsError", "__version__"]
