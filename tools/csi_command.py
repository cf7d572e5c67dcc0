"""The ``csi`` command (installed by setup.py's console entry point): one front door to the tools.

    csi identify AUDIO... --index DIR [tools.identify options]
    csi embed AUDIO... --model DIR [tools.embed options]
    csi eval ...        tools.eval_testset         csi index ...    tools.build_index
    csi train ...       tools.train                csi baseline ... tools.eval_baseline
    csi serve ...       tools.serve_identify       csi TOOL ...     any tools.TOOL, as is

``identify`` and ``embed`` take the index or the model as an option (``--index``/``--model``)
and pass it to the tool as its first argument; every other command passes its arguments
unchanged, so ``csi eval -h`` is ``python3 -m tools.eval_testset -h``.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import tools

ALIASES = {"identify": "identify", "embed": "embed", "eval": "eval_testset", "index": "build_index",
           "train": "train", "baseline": "eval_baseline", "serve": "serve_identify"}
LEADING_OPTION = {"identify": "--index", "embed": "--model"}    # becomes the tool's first argument


def tool_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(tools.__path__) if m.name != "csi_command")


def move_option_first(argv: list[str], option: str) -> list[str] | None:
    """``argv`` with ``option VALUE`` (or ``option=VALUE``) taken out and VALUE put first;
    None when the option is absent (the tool's help is still reachable with -h)."""
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return [argv[i + 1], *argv[:i], *argv[i + 2:]]
        if arg.startswith(option + "="):
            return [arg.split("=", 1)[1], *argv[:i], *argv[i + 1:]]
    return None


def usage() -> str:
    lines = [__doc__.strip().splitlines()[0], "", "usage: csi COMMAND [ARGS]", "", "commands:"]
    for alias, module in ALIASES.items():
        lines.append(f"  {alias:<10} tools.{module}" + (f" (the {LEADING_OPTION[alias]} value first)"
                                                     if alias in LEADING_OPTION else ""))
    lines += ["", "tools (csi TOOL ARGS runs python3 -m tools.TOOL ARGS):", "  " + " ".join(tool_names())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    module = ALIASES.get(command, command)
    if module not in tool_names():
        print(f"csi: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if command in LEADING_OPTION and not any(a in ("-h", "--help") for a in rest):
        moved = move_option_first(rest, LEADING_OPTION[command])
        if moved is None:
            print(f"csi {command}: {LEADING_OPTION[command]} DIR is required (csi {command} -h)", file=sys.stderr)
            return 2
        rest = moved
    tool = importlib.import_module(f"tools.{module}")
    try:
        status = tool.main(rest)
    except SystemExit as e:                 # argparse's usage errors and tools that exit
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
