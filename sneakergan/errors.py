"""The one error type for user mistakes.

Anything a person can fix (a wrong path, a bad flag value, a file that is not what it claims) raises a subclass of
`UserError` with one clear sentence. The CLI's entry point catches it once and prints it as one line (exit 2);
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user gave us; its message is the whole story, in one line."""
