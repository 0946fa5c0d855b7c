"""Mirror Verilock identity-verification sessions into Django."""

import logging

__version__ = "0.1.0.dev0"

# A library configures no handlers, but gives its top logger a NullHandler: without one, a
# record reaching no handler (a management command run without LOGGING) would be printed
# by Python's last-resort handler, on top of the command's own output.
logging.getLogger(__name__).addHandler(logging.NullHandler())
