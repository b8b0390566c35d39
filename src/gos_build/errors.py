"""The one exception type a user ever sees from gos-build."""


class GosBuildError(Exception):
    """A problem with the user's input or config, stated in one line.

    The message names the file or config key and what is wrong with it; the
    CLI prints it without a traceback and exits with status 2.
    """
