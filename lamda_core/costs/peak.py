"""The peak of one training step, read from the allocator's own events.

``torch.profiler`` with ``profile_memory=True`` records every allocation (+bytes) and free
(-bytes) of the step with its time. Their running sum, highest point included, is what the step
adds on top of what was already allocated when it began (weights, optimizer state, inputs):

    peak = allocated at the start + max_t sum_{events e at or before t} bytes(e)

The phase of the peak is the ``record_function`` range (forward, backward, optimizer step) that
holds the event at which the running sum is highest. On a GPU the events are the CUDA caching
allocator's, and ``torch.cuda.max_memory_allocated`` gives the same peak independently.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

PHASES = ("forward", "backward", "optimizer step")


@dataclass(frozen=True)
class StepPeak:
    """extra: bytes above the step's starting allocation at the peak; phase: one of PHASES."""

    extra: int
    phase: str


def allocator_peak(profiler, device_type: str = "cpu") -> StepPeak:
    """The highest running sum of a profiled step's allocation events on ``device_type`` and
    the phase it falls in (requires the PHASES as record_function ranges)."""
    events = profiler.profiler.kineto_results.events()
    wanted = device_type.upper()
    memory = sorted(((e.start_ns(), e.nbytes()) for e in events
                     if e.nbytes() and e.duration_ns() == 0 and e.device_type().name == wanted), key=lambda t: t[0])
    ranges = [(e.start_ns(), e.end_ns(), e.name()) for e in events if e.name() in PHASES]
    running = best = 0
    best_time = memory[0][0] if memory else 0
    for time, nbytes in memory:
        running += nbytes
        if running > best:
            best, best_time = running, time
    phase = next((name for start, end, name in ranges if start <= best_time <= end), "between phases")
    return StepPeak(best, phase)


def resident_bytes() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes, from /proc/self/status (Linux); (0, 0) elsewhere."""
    try:
        lines = open("/proc/self/status").read().splitlines()
    except OSError:
        return 0, 0
    values = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.startswith(("VmRSS", "VmHWM"))}
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


@contextmanager
def resident_growth():
    """Yields a dict that holds, on exit, "bytes": VmHWM after minus VmRSS before (the
    high-water mark is reset first through /proc/self/clear_refs where Linux allows it)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    before, _ = resident_bytes()
    result = {"bytes": 0}
    yield result
    _, high = resident_bytes()
    result["bytes"] = max(0, high - before)
