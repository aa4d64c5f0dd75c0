"""The one exception type a user can cause; the CLI prints its message without a traceback."""


class LangneuronsError(Exception):
    """Bad input or an unusable environment: the message says what is wrong and what to do."""
