"""The command-line convention of every tool (``python3 -m tools.<name>``), in small helpers.

Convention
----------
============================  ==============================================================
inputs                        positional, in CoverHunter's order where the reference has the
                              tool (``tools.train EXP_DIR``, ``tools.extract_csi_features
                              DATA_DIR``)
output directory              ``--out_dir DIR`` (a tool whose reference command line takes
                              it positionally keeps that)
time options                  seconds, named ``*_s`` (``--hop_s``, never ``--hop_frames``)
device                        ``--device auto|cpu|cuda|cuda:N``, default ``auto`` (cuda when
                              available, else cpu); a tool reading a config with a ``device``
                              key defaults to that key instead
progress bar                  shown on stderr; ``--no_progress`` turns it off
config overrides              ``--set key.sub=VALUE`` (repeatable; VALUE read as YAML:
                              ``3``, ``0.5``, ``true``, ``[300, 200]``), checked as the file is
renamed option                the old spelling stays as a hidden alias that warns
messages                      logging on stderr (``setup_logging``); a failed run prints one
                              line ``<tool>: <message>``
exit status                   0 done; 1 failed run (bad input, missing file, config error,
                              a model that does not fit); 2 usage error only (argparse,
                              ``parser.error``)
run record                    a tool that writes outputs writes a YAML record beside them
                              (``csi.env.write_run_info``; ``<tool>.yaml``, or the name it
                              always had, e.g. ``train_run.yaml``): the values actually used
                              (defaults filled, overrides applied), then the environment
============================  ==============================================================

API (a tool uses what applies to it)
------------------------------------
``add_device_arg(parser, default="auto")`` / ``resolve_device(name) -> torch.device``
    ``--device``; ``resolve_device`` (``csi.utils``, the one device choice of the toolkit)
    turns a device name from the command line or a config into a device (``auto`` → cuda
    when available, else cpu); a bad spelling or a CUDA device this machine does not have is
    a ``ConfigError``. ``check_device_name(name)`` checks the spelling only (no torch).
``add_progress_arg(parser)``
    ``--no_progress`` (``args.no_progress``; pass ``progress=not args.no_progress``).
``add_set_arg(parser)`` / ``apply_overrides(config, args.set, where=...)``
    ``--set``. Apply the overrides to the *raw* dict read from the YAML file, before it is
    parsed into its dataclass: a key the schema does not know then fails exactly like the
    same key in the file (``csi.config.from_dict``). A missing intermediate mapping is
    created (``--set val.query_path=...`` adds a dev set), so any key can be set.
``add_renamed_arg(parser, old, new)``
    ``old`` (e.g. ``--out``) as a hidden alias of ``new`` (``--out_dir``) that warns.
``setup_logging(log_file=None)``
    INFO on stderr (and ``log_file``) on rank 0 of a torchrun job, WARNING on other ranks
    (which also drop the config warnings every rank would repeat).
``run_tool_main(name, work, errors=())``
    Runs ``work()``, returns the exit status: 0, or 1 with the one-line message for
    ``ToolError``, ``ConfigError``, ``ManifestError``, ``OSError`` (missing file ...) and
    the tool's own ``errors``. ``work`` may return an int: a status of its own (e.g. 1 when
    ``check_leakage`` finds leakage). Anything else is a bug and raises with its traceback.

A tool module has ``build_parser()``, and ``main(argv=None) -> int`` that parses (usage
errors exit 2 there) and returns ``run_tool_main(...)``; its ``__main__`` block is
``sys.exit(main())``. tests/csi/test_cli.py checks every module of tools/ against this.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from csi.config import apply_overrides  # noqa: F401  (part of the tool API)
from csi.registry import ConfigError
from csi.utils import check_device_name, resolve_device  # noqa: F401  (part of the tool API)

__all__ = ["ToolError", "add_device_arg", "check_device_name", "resolve_device", "add_progress_arg", "add_set_arg",
           "apply_overrides", "add_checkpoint_arg", "add_renamed_arg", "require_options", "setup_logging", "run_tool_main", "LOG_FORMAT"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class ToolError(RuntimeError):
    """A failed run the user can fix (bad input); the tool prints ``<tool>: <message>``, exit 1."""


# ---- device ------------------------------------------------------------------------------
def add_device_arg(parser: argparse.ArgumentParser, default: str | None = "auto", help: str | None = None) -> None:
    parser.add_argument("--device", default=default, type=_device_arg, metavar="DEVICE",
                        help=help or "auto (default: cuda when available, else cpu), cpu, cuda or cuda:N")


def _device_arg(text: str) -> str:
    try:
        return check_device_name(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# ---- progress, overrides, renamed options -------------------------------------------------
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_shard_args(parser: argparse.ArgumentParser, what: str) -> None:
    """``--shard K/N`` (job K of N independent jobs, e.g. ``python3 -m jobs`` array tasks) and
    ``--merge N`` (join the N parts once all are done); ``what`` the unit shared out."""
    parser.add_argument("--shard", metavar="K/N", type=_shard_arg, help=f"only job K (1..N) of N: every N-th {what}")
    parser.add_argument("--merge", metavar="N", type=positive_int, help="join the parts of N shard jobs")


def check_shard_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.shard and args.merge is not None:
        parser.error("--shard and --merge are two steps: give one")


def _shard_arg(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (job K of N), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"job K of N needs 1 <= K <= N, got {text!r}")
    return k, n


def add_progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


def add_rerank_args(parser: argparse.ArgumentParser) -> None:
    """``--rerank SYSTEM --rerank_top K``: two-stage retrieval (csi.eval.rerank)."""
    parser.add_argument("--rerank", choices=("qmax",), help="re-score each query's top K by this alignment system")
    parser.add_argument("--rerank_top", type=int, default=50, help="references re-scored a query (default 50)")


def add_checkpoint_arg(parser: argparse.ArgumentParser, default_help: str = "g_best, else the latest epoch") -> None:
    """``--checkpoint``: an epoch number or a file name in ``MODEL_DIR/pt_model``; without it
    the model directory's one rule (csi.modeldir.checkpoint_path)."""
    parser.add_argument("--checkpoint", help=f"epoch number or file name in MODEL_DIR/pt_model (default: {default_help})")


def add_index_query_args(parser: argparse.ArgumentParser) -> None:
    """The options of a query against a built index (tools.identify, tools.serve_identify):
    the model, its checkpoint, the index's search parameters and the recording score."""
    parser.add_argument("--model_dir", type=Path, help="default: the model recorded in index.json")
    add_checkpoint_arg(parser, "the index's model")
    parser.add_argument("--nprobe", type=int, help="ivfpq: lists visited (default: the index's)")
    parser.add_argument("--ef_search", type=int, help="hnsw: search beam (default: the index's)")
    parser.add_argument("--k_chunks", type=int, help="vectors retrieved a query chunk (default max(100, 10·topk))")
    parser.add_argument("--distance", choices=("min", "mean", "best_pairs"),
                        help="recording score (default: the model's matching.distance, recorded in the index)")


def add_set_arg(parser: argparse.ArgumentParser, what: str = "the config") -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                        help=f"override a key of {what} (a.b=VALUE for nested keys; VALUE read as YAML; repeatable)")




class _RenamedOption(argparse.Action):
    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_arg(parser: argparse.ArgumentParser, old: str, new: str, type: Callable | None = None) -> None:
    """``old`` as a hidden alias of the option ``new`` (same dest); using it warns on stderr.
    Make ``new`` not ``required`` and check it after parsing, so that either spelling works."""
    parser.add_argument(old, dest=new.lstrip("-"), action=_RenamedOption, new=new, type=type,
                        help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def require_options(parser: argparse.ArgumentParser, args: argparse.Namespace, *options: str) -> None:
    """A usage error (exit 2) naming each of ``options`` (``--out_dir``, ...) that was not given
    in either spelling (the options a renamed alias stands for cannot be ``required``)."""
    missing = [o for o in options if getattr(args, o.lstrip("-"), None) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


# ---- logging and the exit status ---------------------------------------------------------
def setup_logging(log_file: str | os.PathLike | None = None) -> None:
    """Log to stderr (and ``log_file``) with one format. Rank 0 of a torchrun job (or a
    single process) logs INFO; other ranks WARNING, without ``csi.config``'s warnings,
    which rank 0 already reports; faiss's loader only from WARNING. Calling it again
    replaces the handlers."""
    main = int(os.environ.get("RANK", 0)) == 0
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None and main:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO if main else logging.WARNING, handlers=handlers, force=True,
                        format=LOG_FORMAT)
    logging.getLogger("csi.config").setLevel(logging.NOTSET if main else logging.ERROR)
    logging.getLogger("faiss").setLevel(logging.WARNING)          # its loader logs each CPU variant tried


def error_line(e: BaseException) -> str:
    """A one-line message for an input error (an OSError names its file)."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def run_tool_main(name: str, work: Callable[[], object], errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``work()``; exit status 0 (or the int ``work`` returns), or 1 with one line
    ``name: message`` on stderr for ToolError, ConfigError, ManifestError, OSError and ``errors``."""
    from csi.io.manifest import ManifestError

    if not logging.getLogger().handlers:
        setup_logging()
    try:
        status = work()
    except (ToolError, ConfigError, ManifestError, OSError, *errors) as e:
        line = f"{name}: {error_line(e)}"
        print(line, file=sys.stderr, flush=True)
        record = logging.LogRecord("csi.cli", logging.ERROR, __file__, 0, line, None, None)
        for handler in logging.getLogger().handlers:   # the tool's log file (e.g. train.log) keeps it too
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        return 1
    return status if isinstance(status, int) and not isinstance(status, bool) else 0
