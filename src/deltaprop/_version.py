"""The library's version, alone in a module that imports nothing (files and the command line read it)."""

__version__ = "0.1.0"
