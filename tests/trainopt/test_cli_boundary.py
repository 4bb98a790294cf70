"""The CLI's one boundary: an OptimizationError no command caught is one line and exit 2, not a traceback;
a Ctrl-C is exit 130 and one line saying what is kept."""

import pytest

from trainopt.cli import INTERRUPTED_MESSAGE, _App, app


def test_a_damaged_store_is_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "trials.db").write_bytes(b"this is not a database\n" * 100)
    with pytest.raises(SystemExit) as exit_info:
        app(["sweep", "--workload", "digits-mlp", "--lr", "1e-3", "--steps", "5", "--device", "cpu",
             "--out", str(tmp_path)], prog_name="trainopt")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error (resource): cannot open the trial store") and str(tmp_path / "trials.db") in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_exits_130_with_one_line_saying_what_is_kept(capsys):
    interrupted = _App()

    @interrupted.command()
    def slow() -> None:
        raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a trial

    with pytest.raises(SystemExit) as exit_info:
        interrupted(args=[], prog_name="trainopt")
    err = capsys.readouterr().err
    assert exit_info.value.code == 130
    assert INTERRUPTED_MESSAGE in err and "Traceback" not in err


def test_a_ctrl_c_after_the_command_finished_does_not_interrupt_the_exit():
    import signal

    done = _App()

    @done.command()
    def quick() -> None:
        pass

    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            done(args=[], prog_name="trainopt")
        assert exit_info.value.code == 0 and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_once_the_work_is_done_lets_the_answer_print():
    import os
    import signal

    from trainopt.commands import work_done

    printing = _App()
    printed = []

    @printing.command()
    def answer() -> None:
        work_done()  # finished and stored
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the answer prints
        printed.append("the answer")

    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            printing(args=[], prog_name="trainopt")
        assert exit_info.value.code == 0 and printed == ["the answer"]
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_ctrl_c_python_drops_in_a_weakref_callback_still_interrupts(capsys):
    import os
    import signal
    import weakref

    from trainopt.commands import work_done
    from trainopt.tools.cancellation import check_interrupted

    dropping = _App()

    @dropping.command()
    def work() -> None:
        class Trial:
            pass

        trial = Trial()
        # the KeyboardInterrupt is raised inside the callback, where Python prints "Exception ignored" and drops it
        keep = weakref.ref(trial, lambda ref: os.kill(os.getpid(), signal.SIGINT))
        del trial
        assert keep() is None
        work_done()  # the noted Ctrl-C interrupts here, before the answer

    before = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as exit_info:
            dropping(args=[], prog_name="trainopt")
        err = capsys.readouterr().err
        # exit 130 with the one line, and no "Exception ignored" traceback for the dropped one
        assert exit_info.value.code == 130 and INTERRUPTED_MESSAGE in err and "Traceback" not in err
        check_interrupted()  # nothing left pending for this process's later work
    finally:
        signal.signal(signal.SIGINT, before)


def test_only_a_dropped_ctrl_c_goes_unprinted(capsys, monkeypatch):
    import sys
    import weakref

    from trainopt.cli import _unraisable

    monkeypatch.setattr(sys, "unraisablehook", _unraisable)

    def drop(error: BaseException) -> None:
        class Trial:
            pass

        trial = Trial()

        def callback(ref):
            raise error

        keep = weakref.ref(trial, callback)  # noqa: F841 (the callback runs when trial is collected)
        del trial

    drop(KeyboardInterrupt())  # raised again at the next step (tools/cancellation.py): not printed
    assert capsys.readouterr().err == ""
    drop(ValueError("a bug in a callback"))  # anything else: Python's own report
    assert "ValueError: a bug in a callback" in capsys.readouterr().err
