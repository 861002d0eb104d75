"""digihuman: a local digital human that sees, listens, thinks, speaks and shows a talking face."""

__version__ = "0.1.0"
