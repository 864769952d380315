"""The one exception type the CLI turns into a sentence and a non-zero exit."""


class MmerbenchError(Exception):
    """A user-facing error: the message is one readable sentence, no traceback needed."""


class DataError(MmerbenchError, ValueError):
    """A dataset file is missing, malformed, truncated or unsafe."""


class UnknownNameError(MmerbenchError, KeyError):
    """A registry lookup for a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
