"""The one exception a user is meant to read: the CLI prints it as a single line."""


class UserError(Exception):
    """Bad input or environment the user can fix (a missing file, an unknown config key...).

    The message names the input and the remedy; the CLI prints `error: <message>` and exits 2.
    """
