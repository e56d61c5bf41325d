"""The one exception a contender raises to be skipped rather than fail (its own module:
``python -m bench._runner`` runs ``_runner`` as ``__main__``, so a class defined there
would not be the one the contenders import)."""


class Skipped(Exception):
    """This contender cannot run here (a peer not installed, a front-end not built);
    the message says why and what would make it run."""
