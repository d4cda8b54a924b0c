"""vitlib: the reference implementations built, chapter by chapter (chapters 00-13), in *Vision meets Language*."""

__version__ = "0.1.0"
