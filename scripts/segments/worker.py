"""A render worker: one process that evaluates the encode's script once (VapourSynth in-process, as vspipe
would) and then encodes job after job from it, each through its own ffmpeg, so Python, torch, VapourSynth, the
source and the model are paid for once per worker, not once per segment.

The same ``EvaluatedScript`` runs in a local worker process (``python -m streamdiffvsr.cli.segments.worker``, driven
by ``LocalWorker`` over pickled messages on its stdin/stdout) and inside a Ray actor (``ray_pool``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.media.tools import require_tool
from streamdiffvsr.cli.segments import partials
from streamdiffvsr.cli.segments.children import NOTICE_PREFIX, TAIL_LINES, spawn, stop
from streamdiffvsr.cli.segments.jobs import Job, Result, ScriptSpec
from streamdiffvsr.cli.segments.partials import NotCommitted, claim, verify

WORKER_MODULE = "streamdiffvsr.cli.segments.worker"


class EvaluatedScript:
    """The script of ``spec``, evaluated once in this process: ``encode`` runs jobs from its output clip,
    ``chain_starts`` and ``anchor_of`` ask its filter where chains start."""

    def __init__(self, spec: ScriptSpec) -> None:
        from streamdiffvsr.threads import CpuThreads
        from streamdiffvsr.vsfilter.filter import live_frame_servers

        CpuThreads.uniform(spec.threads).apply()  # the script's filters take these counts when it makes them
        self.spec = spec
        before = set(live_frame_servers())
        self.clip = _y4m_ready(_evaluate(spec), spec.path)
        self.frames = self.clip.num_frames
        self.server = self._the_filter([s for s in live_frame_servers() if s not in before])
        self.node = socket.gethostname()
        self.cuda_devices = _cuda_devices()

    def release(self) -> None:
        """Let go of the script's clips and filter (their frames and snapshots) before another script is
        evaluated in this process. The networks stay loaded (``checkpoint.load_components`` shares them per
        checkpoint, device and dtype in the process)."""
        import gc

        import vapoursynth as vs

        self.clip = self.server = None
        vs.clear_outputs()
        gc.collect()

    def _the_filter(self, made: list):
        """The one rule for the filter of a script: the frame server of the one ``stream_diffvsr`` this
        evaluation made, if it has the output's length; else None (none, several, or another length: nothing to
        split at). Filters of scripts evaluated before in this process are not this script's."""
        if len(made) != 1 or made[0].clip.num_frames != self.frames:
            return None
        return made[0]

    def chain_starts(self, last: int) -> list[int] | None:
        """Where the script's filter starts chains, frames 0..``last`` (None: no single filter to split at)."""
        return None if self.server is None else self.server.chains.starts(0, min(last, self.frames - 1))

    def model_size(self) -> tuple[int, int] | None:
        """The frame size the script's filter gets (the model's input, after the script prepared the source),
        or None without a single filter."""
        return None if self.server is None else (self.server.clip.width, self.server.clip.height)

    def anchor_of(self, n: int) -> int | None:
        """Where the chain of script frame n starts (walking back to its scene's cut, source frames only; the
        filter remembers it for the render), or None without a single filter."""
        return None if self.server is None else self.server.chains.anchor(n)

    def encode(self, job: Job, report: Callable[[int], None]) -> Result:
        """Encode one job: its frames into ffmpeg, then verified (its partial is left for the orchestrator to
        move into place); a failure is a Result, never an exception, and leaves no partial."""
        began = time.monotonic()
        try:
            ffmpeg = require_tool("ffmpeg")
            ffprobe = require_tool("ffprobe")
        except Exception as exc:  # a node without the tools: say so, another node may have them
            return Result(None, str(exc), node=self.node)
        try:
            claim(job.partial)  # ffmpeg follows names: never write through a link placed there
        except OSError as exc:
            return Result(
                None, f"cannot write {job.partial}: {exc.strerror or exc}", retryable=False, node=self.node
            )
        result, tail = self._pipe_frames(job, [ffmpeg, *job.ffmpeg_args], report)
        if result is None:
            result = _verify(job, ffprobe, tail)
        if result.frames is None:
            job.partial.unlink(missing_ok=True)
        return dataclasses.replace(result, node=self.node, seconds=time.monotonic() - began)

    def _pipe_frames(
        self, job: Job, command: list[str], report: Callable[[int], None]
    ) -> tuple[Result | None, tuple[str, ...]]:
        """Frames into ffmpeg: a Result if either side failed, and ffmpeg's last lines."""
        import vapoursynth as vs

        clip = self.clip[job.segment.first : job.segment.last + 1]
        if job.check_anchor:
            clip = _checked_anchor(clip, job.segment.first)
        child = spawn("ffmpeg", command, stdin=subprocess.PIPE)
        script_error = None
        try:
            clip.output(child.proc.stdin, y4m=True, progress_update=lambda done, total: report(done))
        except (vs.Error, ValueError) as exc:  # ValueError: a frame y4m cannot carry (the same every time)
            script_error = str(exc).strip().splitlines() or [type(exc).__name__]
        except (BrokenPipeError, OSError):
            pass  # ffmpeg stopped reading: its own status and tail say why
        finally:
            with contextlib.suppress(OSError):
                child.proc.stdin.close()
        if script_error is not None:  # a Python error in a frame callback comes with its traceback
            stop(child)
            failed = Result(
                None, script_error[-1], "script", tuple(script_error[-TAIL_LINES:-1]), retryable=False
            )
            return failed, tuple(child.tail)
        code = child.proc.wait()
        child.join()
        if code != 0:  # the same command would fail the same way (options, a full disk): not tried again
            return Result(None, child.status(), "ffmpeg", tuple(child.tail), retryable=False), tuple(
                child.tail
            )
        return None, tuple(child.tail)


def switch_script(script: EvaluatedScript | None, spec: ScriptSpec | None) -> EvaluatedScript:
    """The script a job renders from: ``script``, or ``spec`` evaluated in its place when the job names
    another (a batch's next file)."""
    if spec is None or (script is not None and script.spec == spec):
        assert script is not None
        return script
    if script is not None:
        script.release()
    return EvaluatedScript(spec)


def _verify(job: Job, ffprobe: str, tail: tuple[str, ...]) -> Result:
    """``partials.verify`` as a Result; ``tail`` is ffmpeg's last lines (where "No space left on device" is)."""
    try:
        verify(job.partial, ffprobe, job.segment.frames)
    except NotCommitted as exc:
        return Result(None, str(exc), "ffmpeg", tail, retryable=False)
    return Result(job.segment.frames)


def put_in_place(job: Job, result: Result) -> Result:
    """Move the verified partial of ``job`` (the attempt the orchestrator accepted) to its target; ``result``
    if that worked, else why not (a target someone else created meanwhile, a full disk: not retried)."""
    try:
        partials.commit(job.partial, job.target, job.overwrite)
    except NotCommitted as exc:
        return dataclasses.replace(result, frames=None, error=str(exc), retryable=exc.retryable)
    return result


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def _evaluate(spec: ScriptSpec):
    """Run the script as vspipe does (its folder as the working directory while it runs, then the process's
    own again; ``--arg`` values as globals; run as ``__vapoursynth__``) and return its output 0 as a clip."""
    import vapoursynth as vs

    values = {name: _argument(value) for name, value in spec.args.items()}
    with contextlib.chdir(spec.path.parent):
        runpy.run_path(str(spec.path), init_globals=values, run_name="__vapoursynth__")
    try:
        output = vs.get_output(0)
    except KeyError:
        raise RuntimeError(f"{spec.path} sets no output (call clip.set_output())") from None
    return getattr(output, "clip", output)


class ScriptOutputRefused(CliError):
    """The script's output is one a y4m stream cannot carry: one line naming the fix, never retried."""


def _y4m_ready(clip, path: Path):
    """The script's output as the y4m stream to ffmpeg carries it: without alpha (the ``_Alpha`` of a ProRes
    4444, GIF or RGBA source: the preflight says it is dropped); an RGB output, or one whose size or format
    changes from frame to frame, is refused."""
    import vapoursynth as vs

    fix = "at the end of the script, e.g. clip = core.resize.Bicubic(clip, {}format=vs.YUV420P10{})"
    if clip.format is None or not clip.width or not clip.height:
        what = "format" if clip.format is None else "size"
        raise ScriptOutputRefused(
            f"the output of {path.name} changes {what} from frame to frame, which a video stream cannot carry; "
            f"resize it to one {what} {fix.format('width=W, height=H, ', '')}"
        )
    if clip.format.color_family not in (vs.GRAY, vs.YUV):
        raise ScriptOutputRefused(
            f"the output of {path.name} is {clip.format.name}; the encode takes YUV or GRAY: convert it "
            + fix.format("", ", matrix_s='709'")
        )
    return vs.core.std.RemoveFrameProps(clip, "_Alpha")


def _script_traceback(exc: BaseException, path: Path | None) -> str:
    """The traceback of the script's own error from the script's frames on (the worker's own frames, which
    run it, say nothing to its author); a syntax error is its own lines (file, line, caret). Without a script
    (its spec did not arrive) the whole traceback."""
    tb = exc.__traceback__
    while path is not None and tb is not None and tb.tb_frame.f_code.co_filename != str(path):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb, chain=False))


def _argument(value: str) -> str | bytes:
    """A script argument as vspipe hands it over: text, or the raw bytes of a path that is not UTF-8 (legal on
    Linux; VapourSynth's functions take the bytes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(value)
    return value


def _checked_anchor(clip, first: int):
    """``clip`` (a segment starting at script frame ``first``) whose first frame must carry the filter's anchor
    ``first``: the filter itself confirms the split is exact."""
    import vapoursynth as vs

    from streamdiffvsr.vsfilter import ANCHOR_PROP

    def check(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        anchor = f.props.get(ANCHOR_PROP)
        if n == 0 and anchor != first:
            raise vs.Error(
                f"segment at frame {first}: that frame starts no chain of the filter ({ANCHOR_PROP} = {anchor}); "
                "a split there would not be exact"
            )
        return f

    return vs.core.std.ModifyFrame(clip, clip, check)


# ---- the local worker process and its driver side -------------------------------------------------------


def _serve(commands: BinaryIO, events: BinaryIO) -> None:
    """The worker process: evaluate the script, then answer script (evaluate another), scan, anchor and encode
    messages until stdin closes."""

    def send(*message: Any) -> None:
        pickle.dump(message, events)
        events.flush()

    path = None
    try:
        spec = pickle.load(commands)
        path = spec.path
        script = EvaluatedScript(spec)
    except ScriptOutputRefused as exc:
        send("refused", str(exc))
        return
    except Exception as exc:  # the script's own error: the driver shows it with the tail of stderr
        print(_script_traceback(exc, path), end="", file=sys.stderr, flush=True)
        lines = str(exc).strip().splitlines()
        send("failed", f"{type(exc).__name__}: {lines[-1] if lines else ''}")
        return
    send("ready", (script.frames, script.cuda_devices, script.model_size()))
    while True:
        try:
            kind, value = pickle.load(commands)
        except EOFError:
            return
        if kind == "script":
            try:
                script = switch_script(script, value)
            except Exception as exc:
                traceback.print_exc()
                lines = str(exc).strip().splitlines()
                send("failed", f"{type(exc).__name__}: {lines[-1] if lines else ''}")
                return
            send("script", script.frames)
        elif kind == "scan":
            send("scan", script.chain_starts(value))
        elif kind == "anchor":
            send("anchor", script.anchor_of(value))
        else:
            script = switch_script(script, value.script)
            send("result", script.encode(value, lambda done: send("progress", done)))


def main() -> None:
    events = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the script prints goes to stderr, never into the message stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us; a Ctrl-C reaches it alone
    _serve(sys.stdin.buffer, events)


class WorkerFailed(Exception):
    """The worker process could not evaluate the script (message), with the last lines it printed (tail)."""

    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


class LocalWorker:
    """A worker process on this machine, driven from this one; its script notices go to ``notify``."""

    def __init__(self, spec: ScriptSpec, notify: Callable[[str], None], label: str) -> None:
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.notices: queue.SimpleQueue[str] = queue.SimpleQueue()
        # ``label`` (OUTPUT) only names the worker in process lists: which encode it belongs to.
        self.child = spawn("worker", [sys.executable, "-m", WORKER_MODULE, label], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, on_line=self._stderr_line)  # fmt: skip
        self.notify = notify
        threading.Thread(target=self._read_events, daemon=True).start()
        try:
            self._send(spec)
            kind, value = self.wait_event()
        except BaseException:  # e.g. Ctrl-C while the script loads: nobody else could stop it
            self.close()
            raise
        if kind != "ready":
            self.close()
            if kind == "refused":
                raise ScriptOutputRefused(value)
            raise WorkerFailed(value, list(self.child.tail))
        # the command's own process never imports torch
        self.frames, self.cuda_devices, self.model_size = value

    def _stderr_line(self, line: str) -> bool:
        if line.startswith(NOTICE_PREFIX):
            self.notices.put(line[len(NOTICE_PREFIX) :])
            return True
        return False

    def _send(self, message: Any) -> None:
        pickle.dump(message, self.child.proc.stdin)
        self.child.proc.stdin.flush()

    def _read_events(self) -> None:
        """The only user of the worker's stdout, which it closes at the end (close() kills the worker, which
        ends the stream; closing it here meanwhile would wait for the worker's next message)."""
        with self.child.proc.stdout as stream, contextlib.suppress(Exception):  # however the stream ends
            while True:
                self.events.put(pickle.load(stream))
        self.events.put(("died", None))

    def wait_event(self, timeout: float | None = None) -> tuple[Any, ...]:
        """The next message of the worker (("died", None) once it is gone); raises queue.Empty on timeout."""
        event = self.events.get(timeout=timeout)
        self.flush_notices()
        if event[0] == "died":
            self.child.proc.wait()
            self.child.join()
            return ("failed", f"the worker process ended ({self.child.status()})")
        return event

    def flush_notices(self) -> None:
        while not self.notices.empty():
            self.notify(self.notices.get())

    def _ask(self, kind: str, value: Any) -> Any:
        self._send((kind, value))
        answer, result = self.wait_event()
        if answer != kind:
            raise WorkerFailed(result, list(self.child.tail))
        return result

    def chain_starts(self, last: int) -> list[int] | None:
        return self._ask("scan", last)

    def anchor_of(self, n: int) -> int | None:
        return self._ask("anchor", n)

    def load(self, spec: ScriptSpec) -> None:
        """Evaluate ``spec`` in place of the current script (a batch plans each file on one worker)."""
        self.frames = self._ask("script", spec)

    def submit(self, job: Job) -> None:
        self._send(("encode", job))

    def close(self) -> None:
        stop(self.child)


@contextlib.contextmanager
def local_worker(spec: ScriptSpec, notify: Callable[[str], None], label: str) -> Iterator[LocalWorker]:
    worker = LocalWorker(spec, notify, label)
    try:
        yield worker
    finally:
        worker.close()


if __name__ == "__main__":  # the classes must be pickled under their module's real name, not __main__'s
    from streamdiffvsr.cli.segments import worker

    worker.main()
