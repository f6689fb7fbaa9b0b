"""Row modules by area; importing them registers their rows, in this order
(the table's)."""

from . import system, containers, images, build, streams, scale  # noqa: F401
