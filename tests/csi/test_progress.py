"""Progress bars (csi.utils.progress_bar): frames on a terminal, whole lines in a log file."""
import io
import time

import csi.utils as utils


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_whole_lines_not_frames(monkeypatch):
    monkeypatch.setattr(utils, "LOG_PROGRESS_EVERY_S", 0.02)
    log = io.StringIO()
    for _ in utils.progress_bar(range(30), desc="embed", file=log):
        time.sleep(0.005)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 2 <= len(lines) <= 30
    assert lines[-1].startswith("embed: 100%") and max(map(len, lines)) <= 100
    assert len(set(lines)) == len(lines)                     # no line repeated at close


def test_a_terminal_gets_the_bar_and_disable_is_silent():
    tty = Terminal()
    for _ in utils.progress_bar(range(3), desc="x", file=tty):
        pass
    assert "\r" in tty.getvalue()
    quiet = io.StringIO()
    for _ in utils.progress_bar(range(3), file=quiet, disable=True):
        pass
    assert quiet.getvalue() == ""
