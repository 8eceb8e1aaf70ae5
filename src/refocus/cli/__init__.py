"""The ``refocus`` command-line tool.

Thin by design: each ``cmd_*.py`` module in this package adds its commands to the
shared Typer app through a ``register(app)`` function and calls into the library.
Errors a user can cause (:class:`refocus.errors.RefocusError`) are printed as one
line on stderr with exit code 2; set ``REFOCUS_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer

app = typer.Typer(
    name="refocus",
    help="Change the focus of a photo after it was taken.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: rich markup would swallow "[depth]" in "refocus[depth]", and
    # Typer's rich panels print a type such as "<bool>" after every flag.
    rich_markup_mode=None,
)

_registered = False


@app.callback()
def _root(
    max_megapixels: float = typer.Option(
        None, "--max-megapixels",
        help="Pixel budget for every image read (photo, depth, embedded map, kernel), checked before "
        "decoding; default $REFOCUS_MAX_MEGAPIXELS or 100.",
    ),
) -> None:
    """Change the focus of a photo after it was taken."""
    # A callback keeps `refocus` a command group even while only one command exists.
    if max_megapixels is not None:
        from refocus.io.limits import set_max_megapixels

        set_max_megapixels(max_megapixels)


def _register() -> None:
    global _registered
    if _registered:
        return
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{mod.name}").register(app)
    _name_arguments(app)
    _registered = True


def _name_arguments(typer_app: typer.Typer) -> None:
    """Show positional arguments in upper case in every usage line ("refocus refocus
    [OPTIONS] IMAGE", as the commands' help texts call them); this typer and click
    print "{image}"."""
    import inspect

    from typer.models import ArgumentInfo, ParameterInfo

    for cmd in typer_app.registered_commands:
        for p in inspect.signature(cmd.callback).parameters.values():
            if isinstance(p.default, ArgumentInfo) and p.default.metavar is None:
                p.default.metavar = p.name.upper()
            if isinstance(p.default, ParameterInfo):
                # Typer's own check of a path that exists but cannot be read printed a usage
                # screen; the commands read their paths themselves and say why in one line.
                p.default.readable = False
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _name_arguments(group.typer_instance)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (for checks inside commands)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``refocus`` script."""
    from refocus.errors import (
        as_user_error, debug_requested, install_interrupt_handler, interrupted, report_interrupt,
        uninstall_interrupt_handler,
    )

    # Ctrl-C anywhere (an import, a C callback, a worker pool) ends with one line and exit
    # code 130 (refocus.errors); warnings, ours and the libraries', are one line each.
    own_interrupt_handler = install_interrupt_handler()
    from refocus.cli._console import install_warning_format

    restore_warnings = install_warning_format()
    from refocus.io.limits import ENV_VAR

    debug = debug_requested()
    # --max-megapixels sets the budget through the environment (so batch workers get
    # it); restore it so that in-process callers (tests, the fuzz run) start clean.
    budget_before = os.environ.get(ENV_VAR)

    try:
        try:
            from refocus.render.memory import keep_freed_memory

            keep_freed_memory()  # renders reuse freed memory instead of page-faulting it back in
            _register()
            app(args=argv, standalone_mode=True)
        finally:
            # A swallowed interrupt (see refocus.errors) outranks however the command
            # ended, success included.
            if interrupted():
                raise KeyboardInterrupt
    except SystemExit as exc:
        # Typer turns a KeyboardInterrupt inside a command into a silent exit 130.
        if exc.code == 130:
            report_interrupt()
            sys.exit(130)
        raise
    except KeyboardInterrupt:
        report_interrupt()
        sys.exit(130)
    except Exception as exc:  # never a traceback for a user (a disk fault, out of memory, a bug)
        if debug and not isinstance(exc, MemoryError):
            raise
        err = as_user_error(exc)
        typer.echo(f"error: {str(err).splitlines()[0] if str(err) else err.__class__.__name__}", err=True)
        sys.exit(err.exit_code)
    finally:
        if budget_before is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = budget_before
        restore_warnings()
        if own_interrupt_handler:
            uninstall_interrupt_handler()
