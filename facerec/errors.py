"""The exceptions a user can cause. The CLI prints them as one line and exits non-zero.

Anything else escaping the library is a bug, and the CLI says so.
"""

from __future__ import annotations


class FaceRecError(Exception):
    """Base class: a problem with the user's input, data or workspace, with a message that says
    what is wrong and, where there is one, the fix."""

    exit_code = 2


class DataError(FaceRecError, ValueError):
    """A dataset folder, image or split that cannot be used."""


class UnknownModelError(FaceRecError, LookupError):
    """A model name that is not in the registry."""


class NotEnrolledError(FaceRecError, LookupError):
    """A person the gallery does not hold (removing them; the HTTP API answers 404)."""


class WorkspaceError(FaceRecError):
    """A workspace that is missing, incomplete, corrupt or from a newer facerec."""
