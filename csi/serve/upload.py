"""An upload to the identify service: the request body read within the size limit, taken as
raw audio or as a ``multipart/form-data`` form (RFC 7578: the first part with a file name,
or the one named ``file``), then checked to be audio of at most ``max_seconds``.

Every refusal is an ``UploadError`` carrying the HTTP status and the reason the client
gets back as ``{"error": reason}``: 400 empty or malformed, 411 no length, 413 too large or
too long, 415 not audio.
"""
from __future__ import annotations

import email.message
import email.utils
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Mapping

from csi.serve.options import MB

# suffix given to a raw upload whose name says none, by its Content-Type (the decoder may go by it)
SUFFIX_OF_TYPE = {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/flac": ".flac",
                  "audio/x-flac": ".flac", "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "audio/mp3": ".mp3",
                  "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "video/mp4": ".mp4", "audio/webm": ".webm",
                  "video/webm": ".webm", "audio/aiff": ".aiff", "audio/x-aiff": ".aiff", "audio/opus": ".opus"}
DRAIN_LIMIT = 256 * MB          # an oversized body up to this is read and dropped (the client gets the 413)
_CHUNK = 1 << 16


class UploadError(ValueError):
    """An upload the service refuses: ``status`` (4xx) and the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = int(status)
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str = ""

    @property
    def suffix(self) -> str:
        """The file suffix the upload is decoded under: its name's, else its type's."""
        suffix = Path(self.filename).suffix.lower()
        if suffix and len(suffix) <= 6 and suffix[1:].isalnum():
            return suffix
        return SUFFIX_OF_TYPE.get(self.content_type.split(";")[0].strip().lower(), "")


def _header_param(value: str, header: str, param: str) -> str | None:
    message = email.message.Message()
    message[header] = value
    found = message.get_param(param, header=header)
    if isinstance(found, tuple):            # RFC 2231 (charset, language, value)
        found = email.utils.collapse_rfc2231_value(found)
    return None if found is None else str(found)


def read_body(headers: Mapping[str, str], rfile: BinaryIO, max_bytes: int) -> bytes:
    """The request body (at most ``max_bytes``). An oversized body up to DRAIN_LIMIT is read
    and dropped before the 413 (the client then reads the answer, not a reset)."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        raise UploadError(411, "chunked uploads are not accepted: send the body with a Content-Length")
    length_text = headers.get("Content-Length")
    if length_text is None:
        raise UploadError(411, "no Content-Length: send the audio as the request body with its length")
    try:
        length = int(length_text)
        if length < 0:
            raise ValueError
    except ValueError:
        raise UploadError(400, f"bad Content-Length {length_text!r}") from None
    if length == 0:
        raise UploadError(400, "empty upload: the request body has no bytes")
    if length > max_bytes:
        if length <= DRAIN_LIMIT:
            left = length
            while left > 0:
                got = rfile.read(min(_CHUNK, left))
                if not got:
                    break
                left -= len(got)
        raise UploadError(413, f"too large: {length} bytes ({length / MB:.1f} MB); the limit is "
                               f"{max_bytes / MB:g} MB")
    data = rfile.read(length)
    if len(data) < length:
        raise UploadError(400, f"incomplete body: {len(data)} of {length} bytes arrived")
    return data


def parse_upload(body: bytes, content_type: str, name: str | None = None) -> Upload:
    """The audio of a request body: a multipart form's file part, or the body itself
    (named ``name``, the ``?name=`` of the request, when given)."""
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        return _form_file(body, content_type)
    return Upload(body, os.path.basename(name or "") or "upload", content_type)


def _form_file(body: bytes, content_type: str) -> Upload:
    boundary = _header_param(content_type, "content-type", "boundary")
    if not boundary:
        raise UploadError(400, "malformed form: multipart/form-data without a boundary")
    pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise UploadError(400, "malformed form: no closing boundary")
    files, named = [], None
    for piece in pieces[1:-1]:
        rest = piece.lstrip(b" \t").removeprefix(b"\r\n")
        if rest.startswith(b"\r\n"):              # a part without headers
            head, content = b"", rest[2:]
        else:
            head, sep, content = rest.partition(b"\r\n\r\n")
            if not sep:
                raise UploadError(400, "malformed form: a part without a blank line after its headers")
        part_headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                part_headers[key.strip().lower()] = value.strip()
        disposition = part_headers.get("content-disposition", "")
        field = _header_param(disposition, "content-disposition", "name")
        filename = _header_param(disposition, "content-disposition", "filename")
        upload = Upload(content, os.path.basename(filename or field or "upload") or "upload",
                        part_headers.get("content-type", ""))
        if filename is not None:
            files.append(upload)
        if field == "file":
            named = upload
    chosen = named or (files[0] if files else None)
    if chosen is None:
        raise UploadError(400, "the form has no file: send the audio in a field named 'file'")
    if not chosen.data:
        raise UploadError(400, f"empty upload: the form's file {chosen.filename!r} has no bytes")
    return chosen


def check_audio(path: str | os.PathLike, shown_as: str, max_seconds: float) -> float:
    """The duration of the audio file ``path`` (the upload ``shown_as``): 415 if it cannot be
    decoded, 413 if longer than ``max_seconds``. The header gives the duration where
    soundfile reads the format; other formats are decoded once (csi.io.audio.load)."""
    from csi.io.audio import AudioError, load, probe

    def reason(e: Exception) -> str:
        return str(e).replace(str(path), shown_as)

    try:
        seconds = probe(path).duration
    except AudioError as probe_error:
        try:
            y, sr = load(path)
        except AudioError as e:
            raise UploadError(415, f"not audio: {shown_as}: {reason(e)}") from None
        except Exception as e:              # a decoder's own failure on bytes that are no audio
            raise UploadError(415, f"not audio: {shown_as}: {reason(probe_error)} ({type(e).__name__})") from None
        seconds = len(y) / sr
    if seconds > max_seconds:
        raise UploadError(413, f"too long: {shown_as} is {seconds:.1f} s; the limit is {max_seconds:g} s")
    return seconds
