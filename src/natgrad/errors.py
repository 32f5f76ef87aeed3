"""The one error type natgrad raises for bad input: its message names the fix."""


class NatgradError(ValueError):
    """Bad input from the user (env id, space, hyperparameter, file): one line, with the fix."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line, for quoting inside a NatgradError."""
    return " ".join(str(e).split())
