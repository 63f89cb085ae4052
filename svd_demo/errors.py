"""Errors that are meant to reach the person using the app, word for word."""


class UserFacingError(Exception):
    """Something the user can fix or needs to know; its message is shown as is (UI, CLI and API)."""


class InputError(UserFacingError, ValueError):
    """The input (an image, a video, a number) cannot be used; the message says why and what to do."""


class ModelLoadError(UserFacingError):
    """A model could not be loaded (missing, gated, corrupt or unreachable)."""


class GenerationCancelled(UserFacingError):
    """The user pressed Cancel; raised from a step callback so the pipeline stops at the next step."""


class OutOfMemory(UserFacingError):
    """Even the smallest settings did not fit in GPU memory."""


class EncodeError(UserFacingError):
    """The video could not be written (ffmpeg failed, the disk is full or not writable)."""
