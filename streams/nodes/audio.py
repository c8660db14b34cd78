"""PCM helpers and the espeak-ng subprocess: WAV parsing, resampling, chunking.

The resampler uses integer arithmetic only (numpy int64, vectorised): the output
is bit-identical on every platform, which keeps synthesised audio (and everything
recognised from it) reproducible. It runs on the processor's event loop, so it
must be fast: a pure-Python loop took 12-16 ms per spoken reply, time during which
no cancel could be served.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from array import array
from collections.abc import Iterator

import numpy as np

from streams.nodes.errors import BadInputError, ProviderError

__all__ = [
    "ESPEAK_BINARY",
    "chunk_pcm16",
    "espeak_command",
    "espeak_pcm16",
    "parse_wav",
    "resample_pcm16",
    "resample_pcm16_reference",
    "synthesize_pcm16",
]

ESPEAK_BINARY = "espeak-ng"
_BYTES_PER_SAMPLE = 2


def parse_wav(data: bytes) -> tuple[bytes, int]:
    """Return (mono PCM16 samples, sample rate) from a RIFF/WAVE byte string.

    espeak-ng writing to a pipe cannot seek back to patch sizes, so its RIFF and
    data lengths are 0x7fffffff-style placeholders: the data chunk is taken to
    run to the end of the buffer whenever its declared size overshoots.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise BadInputError("not a RIFF/WAVE stream")
    pos, rate, fmt_seen = 12, 0, False
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag != 1 or channels != 1 or bits != 16:
                raise BadInputError(
                    f"need mono PCM16 WAV, got format={tag} ch={channels} bits={bits}"
                )
            fmt_seen = True
        elif cid == b"data":
            if not fmt_seen:
                raise BadInputError("WAV data chunk before fmt chunk")
            end = min(len(data), body + size)
            end -= (end - body) % _BYTES_PER_SAMPLE
            return data[body:end], rate
        pos = body + size + (size & 1)
    raise BadInputError("WAV stream has no data chunk")


def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Linear-interpolation resample of mono PCM16, integer-exact.

    Output sample i sits at source position i*src/dst; the fraction is kept as
    an integer numerator so there is no float rounding anywhere.
    """
    if len(pcm) % _BYTES_PER_SAMPLE:
        raise BadInputError(f"PCM16 length {len(pcm)} is not a whole number of samples")
    if src_rate == dst_rate or not pcm:
        return pcm
    src = np.frombuffer(pcm, dtype="<i2").astype(np.int64)
    n_dst = len(src) * dst_rate // src_rate
    j, frac = np.divmod(np.arange(n_dst, dtype=np.int64) * src_rate, dst_rate)
    a = src[j]
    b = src[np.minimum(j + 1, len(src) - 1)]  # the last sample holds past the end
    # numpy's // on integers floors like Python's, so this is the exact integer formula.
    out = a + ((b - a) * frac + dst_rate // 2) // dst_rate
    return bytes(out.astype("<i2").tobytes())


def resample_pcm16_reference(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """The defining formula of :func:`resample_pcm16`, one sample at a time (its test
    oracle and benchmark baseline): output i sits at source position i*src/dst, linearly
    interpolated, rounded half up, the last sample held past the end."""
    src = array("h")
    src.frombytes(pcm)
    if src_rate == dst_rate or not src:
        return pcm
    n_dst = len(src) * dst_rate // src_rate
    out = array("h", bytes(_BYTES_PER_SAMPLE * n_dst))
    for i in range(n_dst):
        j, frac = divmod(i * src_rate, dst_rate)
        a = src[j]
        b = src[j + 1] if j + 1 < len(src) else a
        out[i] = a + ((b - a) * frac + dst_rate // 2) // dst_rate
    return out.tobytes()


def chunk_pcm16(pcm: bytes, *, sample_rate: int, chunk_ms: int = 20) -> Iterator[bytes]:
    """Split PCM16 into ``chunk_ms`` pieces; the last piece may be shorter."""
    size = sample_rate * chunk_ms // 1000 * _BYTES_PER_SAMPLE
    for start in range(0, len(pcm), size):
        yield pcm[start : start + size]


def espeak_command(*, voice: str, rate: int, pitch: int = 50) -> list[str]:
    # Text goes on stdin (--stdin) so a reply starting with "-" is never read as an option.
    binary = shutil.which(ESPEAK_BINARY) or ESPEAK_BINARY
    return [binary, "--stdout", "--stdin", "-v", voice, "-s", str(rate), "-p", str(pitch)]


def _to_pcm(wav: bytes, sample_rate: int) -> bytes:
    pcm, src_rate = parse_wav(wav)
    return resample_pcm16(pcm, src_rate, sample_rate)


async def espeak_pcm16(
    text: str, *, voice: str, rate: int, pitch: int = 50, sample_rate: int = 16000
) -> bytes:
    """Synthesise ``text`` as mono PCM16 at ``sample_rate``; cancelling kills espeak-ng."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *espeak_command(voice=voice, rate=rate, pitch=pitch),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ProviderError(f"cannot start {ESPEAK_BINARY}: {exc}") from exc
    try:
        wav, err = await proc.communicate(text.encode("utf-8"))
    except BaseException:
        # Cancelled (or failed) mid-synthesis: never leave the child running or unreaped.
        if proc.returncode is None:
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        raise ProviderError(
            f"{ESPEAK_BINARY} exited {proc.returncode}: {err.decode(errors='replace').strip()}"
        )
    return _to_pcm(wav, sample_rate)


def synthesize_pcm16(
    text: str, *, voice: str = "en", rate: int = 160, pitch: int = 50, sample_rate: int = 16000
) -> bytes:
    """Blocking synthesis for producers and tests (the demo's spoken input utterances)."""
    try:
        done = subprocess.run(
            espeak_command(voice=voice, rate=rate, pitch=pitch),
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProviderError(f"{ESPEAK_BINARY} failed: {exc}") from exc
    if done.returncode != 0:
        raise ProviderError(f"{ESPEAK_BINARY} exited {done.returncode}: {done.stderr!r}")
    return _to_pcm(done.stdout, sample_rate)
