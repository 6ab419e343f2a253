"""User-facing failures.

Every exception here carries a message written for a musician, not a programmer: the app shows it as is,
the CLI prints it and moves on to the next file. Anything else that escapes is a bug.
"""

from __future__ import annotations


class SeparationError(Exception):
    """Base class of the failures a user can cause and understand."""


class AudioDecodeError(SeparationError):
    """The file is not audio we can read (corrupt, truncated, or not audio at all)."""


class EmptyAudioError(SeparationError):
    """The file decodes but holds no samples, or only silence where sound is required."""


class AudioTooShortError(SeparationError):
    """The audio is too short to separate meaningfully."""


class AudioTooLongError(SeparationError):
    """The audio is longer than this installation accepts."""


class CheckpointError(SeparationError):
    """Model weights are missing, malformed, unsafe, or do not match the architecture."""


class NoSoundTrackError(AudioDecodeError):
    """The upload is a video without any sound to separate."""
