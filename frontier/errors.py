"""User-facing errors: one clear line, non-zero exit. Tracebacks are for bugs only."""


class FrontierError(Exception):
    """A problem with the user's input; the CLI prints the message alone and exits 2."""


class SpecError(FrontierError):
    """A scenario, model card, GPU spec or trace that does not validate."""
