"""The one base class of every error hwnas raises on bad input (the CLI prints these in one line)."""


class HwnasError(Exception):
    """Bad input to hwnas: a file, a name, a config value or an arch. The message names it."""
