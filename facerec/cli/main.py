"""The ``facerec`` command line: parses arguments, calls the library, prints results.

Every command that reports results takes ``--json`` (one JSON object on stdout). Progress bars go
to stderr; ``-q`` silences them. A user error prints one line, ``error: ...``, and exits 2;
anything unexpected prints one line too (set ``FACEREC_DEBUG=1`` for the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from facerec import __version__
from facerec.cli.options import add_common, emit, one_line
from facerec.cli.service import add_parsers as add_service_parsers
from facerec.core.errors import FaceRecError, storage_problem


def build_parser() -> argparse.ArgumentParser:
    from facerec.cli import evaluate, faces, forget, gallery, training

    parser = argparse.ArgumentParser(prog="facerec", description="Face recognition that can forget.")
    parser.add_argument("--version", action="version", version=f"facerec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    training.add_parsers(sub)
    faces.add_parsers(sub)
    gallery.add_parsers(sub)
    forget.add_parsers(sub)
    evaluate.add_parsers(sub)
    add_service_parsers(sub, add_common, emit)
    training.add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gallery import GalleryCorrupt, GalleryError

    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 prints escaped, never raises
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    _show_notes()
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    except (FaceRecError, GalleryError) as err:
        hint = "; rebuild it from the stored crops with `facerec reindex`" if isinstance(err, GalleryCorrupt) else ""
        print(f"error: {one_line(str(err))}{hint}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print("interrupted; a training run resumes from its last epoch when run again", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facerec people | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the pipe
        return 0
    except Exception as err:  # the disk, not the input: one line, exit 2; anything else is a bug
        if (reason := storage_problem(err)) is not None:
            print(f"error: {one_line(reason)}; whatever the command had not committed was undone", file=sys.stderr)
            return 2
        if os.environ.get("FACEREC_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {one_line(str(err))} (set FACEREC_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    return 0


def _show_notes() -> None:
    """The library's notes (``logging`` at WARNING on the ``facerec`` logger: crops moved to
    quarantine, say) as one ``note: ...`` line each on stderr."""
    import logging

    class Notes(logging.Handler):
        def emit(self, record):
            print(f"note: {one_line(record.getMessage())}", file=sys.stderr)  # today's sys.stderr

    logger = logging.getLogger("facerec")
    if not any(type(h).__name__ == "Notes" for h in logger.handlers):
        logger.addHandler(Notes(logging.WARNING))


if __name__ == "__main__":
    sys.exit(main())
