"""What every package of the lab shares, at the bottom of the import graph (it imports
none of them): the one error type and its message format (``common.errors``), atomic
writes, YAML reading and provenance (``common.files``), and the project's paths
(``common.paths``)."""
__version__ = "0.1.0"
