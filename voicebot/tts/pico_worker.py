"""SVOX Pico in a child process, so its synthesis never holds the server's GIL.

py-nanotts runs a whole sentence in C without releasing the GIL: 25 ms of CPU on an idle
machine, 120-180 ms of wall time on a loaded one, during which the server's event loop
sends no bot audio and reads no caller audio (``scripts/bench_playback.py``). In a child
process the parent only waits on a pipe, which releases the GIL.

The child is ``python .../voicebot/tts/pico_worker.py LINGWARE_DIR``, run as a script so
it imports only the standard library and py-nanotts (not the voicebot package and its
settings). Requests and replies on its stdin/stdout are length-prefixed (4 bytes,
big-endian): a request is UTF-8 JSON ``{"text": ..., "speed": ...}``; a reply is a status
byte (``0`` ok, ``1`` error) and then the 16-bit PCM or the error message. The child exits
when its stdin closes (the parent is gone).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

_LEN = struct.Struct(">I")


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            raise EOFError("the Pico worker's pipe closed")
        data += chunk
    return data


def read_message(stream: BinaryIO) -> bytes:
    (n,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    return _read_exact(stream, n)


def write_message(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)) + payload)
    stream.flush()


class PicoProcess:
    """The parent's handle on one worker process (not thread-safe: the caller holds a lock)."""

    def __init__(self, lingware: Path) -> None:
        self.lingware = lingware
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PicoProcess:
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(self.lingware)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def speak(self, text: str, speed: float) -> bytes:
        """16-bit PCM of ``text``; raises RuntimeError for Pico's own errors, EOFError/OSError if the
        worker died."""
        if self._proc is None or self._proc.stdin is None or self._proc.stdout is None:
            raise RuntimeError("PicoProcess.start() has not been called")
        write_message(self._proc.stdin, json.dumps({"text": text, "speed": speed}).encode("utf-8"))
        reply = read_message(self._proc.stdout)
        if reply[:1] != b"\x00":
            raise RuntimeError(f"Pico failed: {reply[1:].decode('utf-8', 'replace')}")
        return reply[1:]

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # a dead worker's pipe is broken
                proc.stdin.close()  # the worker exits on EOF
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def pin_mmap_threshold() -> None:
    """Make SVOX Pico's output repeatable (glibc only; a no-op elsewhere).

    py-nanotts mallocs Pico's work buffer on every call and Pico reads part of it
    before writing it, so the audio depends on what the heap held before. glibc
    raises its mmap threshold dynamically after large frees, so later buffers come
    from the (dirty) heap; fixing the threshold (mallopt M_MMAP_THRESHOLD = -3)
    keeps every such buffer a fresh, zero-filled mmap: same text, same bytes.
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(name).mallopt(-3, 128 * 1024)
    except (OSError, AttributeError):
        pass  # not glibc (e.g. musl has no mallopt): Pico output may then vary slightly between runs


def serve(lingware: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The worker's loop: one request, one reply, until stdin closes."""
    from py_nanotts._nanotts import speak

    pin_mmap_threshold()  # same text, same bytes, as in-process
    while True:
        try:
            request = json.loads(read_message(stdin))
        except EOFError:
            return
        try:
            pcm = speak(text=request["text"], voice="de-DE", speed=request["speed"], pitch=None, volume=None,
                        lingware_path=lingware)
            write_message(stdout, b"\x00" + bytes(pcm))
        except Exception as exc:  # Pico's errors go back to the caller, the worker lives on
            write_message(stdout, b"\x01" + str(exc).encode("utf-8"))


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
