"""The CLI's own user-facing error: ``main`` prints its message on one line and exits non-zero."""


class CliError(Exception):
    """A mistake the user can fix (bad path, unknown preset, missing tool); the message says what and how."""

    exit_code = 2
