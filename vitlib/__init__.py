"""vitlib: the reference implementations built, chapter by chapter, in *Vision meets Language*."""

__version__ = "0.1.0"
