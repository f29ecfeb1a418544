"""The exact-recurrence frame server: frame n is the sequential recurrence from its chain's anchor, whatever
order frames are asked for in.

One live stream is kept for the next frame of its chain. Any other request restarts from the best known
point: the live stream if it is behind the frame in the same chain, else the latest host-memory snapshot of
that chain's stream state at or before the frame, else the anchor itself. The last few outputs are kept (LRU)
for repeated and out-of-order requests. The source frames a restart needs are fetched with the server's lock
released, a few at a time; the steps are taken under it.

Snapshots are taken every ``snapshot_interval`` frames of a chain but kept only where a seek can still use them
cheaply, so a long linear encode runs in flat memory: the snapshots of the chain in use and the few chains used
before it, thinned with distance (the newest ``RECENT_PER_SPACING`` at the interval, the ones behind them at
twice it, and so on: O(log n) per chain, and a seek d frames back costs at most about d / RECENT_PER_SPACING +
interval steps), and never more than ``SNAPSHOT_BUDGET`` bytes (``snapshot_budget`` sets another budget, e.g.
none for an encode's script).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import vapoursynth as vs

from streamdiffvsr import SCALE, Stream, StreamDiffVSR
from streamdiffvsr.engine import EngineSpec
from streamdiffvsr.threads import CpuThreads

from .chains import Chains
from .convert import Downloader, FrameReader, host_buffer, write_frame

SNAPSHOT_BUDGET = 512 << 20  # bytes of host memory for stream-state snapshots, whatever the frame size
MAX_SNAPSHOTS = 256
RECENT_PER_SPACING = 4  # snapshots kept at each spacing (interval, 2x, 4x, ...) behind a chain's newest one
KEPT_CHAINS = 3  # the chain in use and the two chains used before it
OUTPUT_BUDGET = 256 << 20  # bytes of host memory (page-locked on CUDA) for recent outputs
SEEK_BUDGET = 64 << 20  # bytes of source frames a seek fetches at once (without the lock)
MIN_OUTPUTS = 2
MAX_OUTPUTS = 64


def output_cache_size(frame_bytes: int, budget: int = OUTPUT_BUDGET) -> int:
    """As many recent outputs as ``budget`` bytes hold (at least MIN_OUTPUTS, at most MAX_OUTPUTS). An output
    evicted before its request arrives is recomputed from the nearest snapshot: exact, only slower."""
    return max(MIN_OUTPUTS, min(MAX_OUTPUTS, budget // max(frame_bytes, 1)))


@dataclass
class Chain:
    """Where a temporal chain is: it starts at ``anchor``, and ``pos`` is the next frame the state can produce."""

    anchor: int
    pos: int


@dataclass
class Snapshot:
    chain: Chain
    state: dict[str, torch.Tensor]
    nbytes: int


_budget: ContextVar[int] = ContextVar("snapshot_budget", default=SNAPSHOT_BUDGET)


@contextmanager
def snapshot_budget(nbytes: int) -> Iterator[None]:
    """Filters made inside this block keep at most ``nbytes`` of snapshots; 0 for a script only ever read
    linearly (an encode), which never seeks back to one."""
    token = _budget.set(nbytes)
    try:
        yield
    finally:
        _budget.reset(token)


class SnapshotStore:
    """Host-memory copies of stream states keyed by the next frame they produce; thinned with distance, only
    for the last few chains used, LRU-bounded in bytes (a state larger than the whole budget is not kept)."""

    def __init__(self, interval: int, budget: int | None = None) -> None:
        self.interval = interval
        self.budget = _budget.get() if budget is None else budget
        self.entries: OrderedDict[int, Snapshot] = OrderedDict()
        self.chains: OrderedDict[int, None] = OrderedDict()  # anchors, least recently used first
        self.nbytes = 0

    def __contains__(self, pos: int) -> bool:
        return pos in self.entries

    def save(self, stream: Stream, chain: Chain) -> None:
        live = stream.state_dict()
        nbytes = sum(t.numel() * t.element_size() for t in live.values())
        if nbytes > self.budget:
            return
        state = {key: value.to("cpu", copy=True) for key, value in live.items()}
        if chain.pos in self.entries:
            self._drop(chain.pos)
        self.entries[chain.pos] = Snapshot(Chain(chain.anchor, chain.pos), state, nbytes)
        self.nbytes += nbytes
        self._use_chain(chain.anchor)
        self._thin(chain)
        while len(self.entries) > MAX_SNAPSHOTS or self.nbytes > self.budget:
            self._drop(next(iter(self.entries)))

    def _drop(self, pos: int) -> None:
        self.nbytes -= self.entries.pop(pos).nbytes

    def _use_chain(self, anchor: int) -> None:
        """Mark the chain at ``anchor`` as the latest used; forget the snapshots of chains used before the last
        KEPT_CHAINS (a linear encode never goes back to them)."""
        self.chains[anchor] = None
        self.chains.move_to_end(anchor)
        while len(self.chains) > KEPT_CHAINS:
            old, _ = self.chains.popitem(last=False)
            for pos in [pos for pos, snap in self.entries.items() if snap.chain.anchor == old]:
                self._drop(pos)

    def _thin(self, newest: Chain) -> None:
        """Keep a snapshot of ``newest``'s chain d frames behind it only on the grid of its spacing level: the
        interval doubles every RECENT_PER_SPACING snapshots back. A dropped one would be dropped later too."""
        for pos, snap in list(self.entries.items()):
            behind = newest.pos - pos
            if snap.chain.anchor != newest.anchor or behind <= 0:
                continue
            level = (behind // (RECENT_PER_SPACING * self.interval) + 1).bit_length() - 1
            if level and (pos - newest.anchor) % (self.interval << level):
                self._drop(pos)

    def latest(self, anchor: int, n: int) -> Snapshot | None:
        """The snapshot of the chain starting at ``anchor`` closest before (or at) frame n."""
        best = None
        for snap in self.entries.values():
            c = snap.chain
            if c.anchor == anchor and c.pos <= n and (best is None or c.pos > best.chain.pos):
                best = snap
        if best is not None:
            self.entries.move_to_end(best.chain.pos)
            self._use_chain(anchor)
        return best


@dataclass
class Output:
    image: torch.Tensor  # (3, H, W) float32 host buffer
    anchor: int  # the frame its chain started at
    copied: torch.cuda.Event | None  # set while the copy from the device may still be running

    def ready(self) -> torch.Tensor:
        if self.copied is not None:
            self.copied.synchronize()
            self.copied = None
        return self.image


class OutputCache:
    """The last few outputs in host memory (LRU); an evicted entry's buffer holds the next one. Copies from the
    device overlap the frames computed after them, and are waited for only when an output is read."""

    def __init__(self, capacity: int, shape: tuple[int, ...], device: torch.device) -> None:
        self.capacity = capacity
        self.shape = shape
        self.device = device
        self.downloader = Downloader(device)
        self.entries: OrderedDict[int, Output] = OrderedDict()

    def get(self, n: int) -> Output | None:
        entry = self.entries.get(n)
        if entry is not None:
            self.entries.move_to_end(n)
        return entry

    def put(self, n: int, image: torch.Tensor, chain: Chain) -> None:
        """Store (1, 3, H, W) ``image`` (any device) as frame n's output."""
        if n in self.entries:
            buffer = self.entries.pop(n).ready()
        elif len(self.entries) >= self.capacity:
            buffer = self.entries.popitem(last=False)[1].ready()
        else:
            buffer = host_buffer(self.shape, self.device)
        copied = self.downloader.copy(image[0], buffer)
        self.entries[n] = Output(buffer, chain.anchor, copied)


class FrameServer:
    """Serves output frame n of ``clip`` exactly, in any request order. Thread-safe (one step at a time).
    The networks are loaded when the first frame is computed (a script evaluated only to plan never loads them)."""

    def __init__(
        self,
        spec: EngineSpec,
        clip: vs.VideoNode,
        chains: Chains,
        *,
        snapshot_interval: int,
        output_frames: int,
        threads: CpuThreads,
    ) -> None:
        self.spec = spec
        self.threads = threads  # applied around every step, whichever VapourSynth thread runs it
        self._engine: StreamDiffVSR | None = None
        self._stream: Stream | None = None
        self.clip = clip
        self.chains = chains
        self.interval = snapshot_interval
        self.reader = FrameReader(clip.width, clip.height, spec.device)
        self.outputs = OutputCache(output_frames, (3, clip.height * SCALE, clip.width * SCALE), spec.device)
        self.snapshots = SnapshotStore(snapshot_interval)
        frame_bytes = clip.width * clip.height * 3 * clip.format.bytes_per_sample
        self.seek_frames = max(1, SEEK_BUDGET // frame_bytes)
        self.live: Chain | None = None
        self.lock = threading.Lock()
        self.steps_run = 0  # frames the model has processed (for tests and diagnostics)

    @property
    def engine(self) -> StreamDiffVSR:
        """The loaded engine (loaded on first use)."""
        if self._engine is None:
            self._engine = self.spec.load()
        return self._engine

    @property
    def stream(self) -> Stream:
        """The live stream (made with the engine on first use)."""
        if self._stream is None:
            self._stream = self.engine.stream()
        return self._stream

    def serve(self, n: int, source: vs.VideoFrame, cut: vs.VideoFrame, out: vs.VideoFrame) -> int:
        """Write output frame n into ``out``, given source frame n and frame n of ``chains.cuts``; returns n's
        chain anchor. A seek fetches what it needs (earlier cut flags, source frames) with the lock released,
        then steps under it from the best start known by then: no ``get_frame`` is ever waited on while holding
        the lock, which other VapourSynth threads may be waiting for."""
        anchor = self.chains.anchor(n, cut)
        frames = {n: source}
        while True:
            with self.lock:
                output = self.outputs.get(n)
                if output is None:
                    with self.threads.applied():
                        wanted = self._compute(anchor, n, frames)
                    output = self.outputs.get(n) if wanted is None else None  # the last one computed: kept
                if output is not None:
                    write_frame(output.ready(), out)
                    return output.anchor
            frames = {k: self.clip.get_frame(k) for k in wanted} | {n: source}

    def _compute(self, anchor: int, n: int, frames: dict[int, vs.VideoFrame]) -> range | None:
        """Step the live stream toward frame n of the chain at ``anchor`` as far as the source ``frames`` at hand
        go, caching the outputs that fit (n's among them). None once n is computed, else the frames to fetch
        next (at most ``seek_frames``)."""
        start = self._seek(anchor, n, frames)
        if start is None:
            live = self.live
            start = next(k for k in range(live.pos, n + 2) if k not in frames)
            self._step(n, frames, start)
            if start > n:
                return None
        return range(start, min(n, start + self.seek_frames))

    def _step(self, n: int, frames: dict[int, vs.VideoFrame], stop: int) -> None:
        """Step the live stream up to (not including) frame ``stop``, toward n."""
        live = self.live
        keep_from = n - self.outputs.capacity + 1
        try:
            for k in range(live.pos, stop):
                if k > live.anchor and (k - live.anchor) % self.interval == 0 and k not in self.snapshots:
                    self.snapshots.save(self.stream, live)
                result = self.stream.step(self.reader(frames[k]))
                self.steps_run += 1
                live.pos = k + 1
                if k >= keep_from:
                    self.outputs.put(k, result, live)
        except BaseException:
            self.live = None  # the stream may be half-stepped: never continue from it
            raise

    def _seek(self, anchor: int, n: int, frames: dict[int, vs.VideoFrame]) -> int | None:
        """Make the live stream the best available start for frame n of the chain beginning at ``anchor``, if
        the source frame it goes on from is in ``frames``: None. Else that start, with nothing changed."""
        live = self.live
        live_pos = live.pos if live is not None and live.anchor == anchor and live.pos <= n else None
        snap = self.snapshots.latest(anchor, n)
        if live_pos is not None and (snap is None or snap.chain.pos <= live_pos):
            return None if live_pos in frames else live_pos
        start = snap.chain.pos if snap is not None else anchor
        if start not in frames:
            return start
        if live is not None and live.pos > live.anchor and live.pos not in self.snapshots:
            self.snapshots.save(self.stream, live)  # park it: a later request may want to go on from here
        if snap is not None:
            self.stream.load_state_dict(snap.state)
            self.live = Chain(anchor, snap.chain.pos)
        else:
            self.stream.reset()
            self.live = Chain(anchor, anchor)
        return None
