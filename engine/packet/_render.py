"""Render a promotion decision into an auditor packet (PDF/A-3b) with its evidence attached.

The packet is jinja2 HTML laid out by WeasyPrint. Its bytes depend only on the content and
the attachments (and the installed WeasyPrint and fontTools; the fonts ship in
``templates/fonts``, the system's are only a fallback for characters they lack): every date in it comes
from ``content["generated_at"]``, the PDF ``/ID`` is WeasyPrint's MD5 of the document
objects, and nothing is fetched from outside the ``slmgate.templates`` package (no network,
no stray files). ``render_document`` is the same pipeline for other documents (the RoPA).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import importlib.resources
import io
import logging
import mimetypes
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jinja2
import weasyprint
from pypdf import PdfReader
from weasyprint.pdf.anchors import write_pdf_attachment
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from slmgate.engine.packet._files import SEAL_NAME
from slmgate.engine.packet._pages import page_digests
from slmgate.engine.packet._view import PacketError, packet_view

__all__ = ["Attachment", "PacketError", "TemplateFetcher", "render_document", "render_html", "render_packet"]

_TEMPLATE = "packet.html.j2"
_DASH = "—"
_PACKET_MODE = 0o644
# SOURCE_DATE_EPOCH is process-wide; renders hold this lock while they set it.
_EPOCH_LOCK = threading.Lock()


class _FontSubsetNotice(logging.Filter):
    """WeasyPrint 70 warns on every render that it subsets fonts with fontTools because this
    machine has no HarfBuzz-Subset; the packet bytes rely on that path (see above), so the
    notice is dropped rather than repeated per packet."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HarfBuzz-Subset" not in record.getMessage()


logging.getLogger("weasyprint").addFilter(_FontSubsetNotice())


@dataclass(frozen=True)
class Attachment:
    """A file carried inside the packet as a PDF/A-3 associated file (relationship Source)."""

    name: str  # file name inside the PDF, e.g. "evidence/eval-result.dsse.json"
    data: bytes
    description: str
    media_type: str = "application/json"


class TemplateFetcher(URLFetcher):
    """Serves ``file:`` URLs inside one directory and refuses every other URL.

    Refusals stop the render (``fail_on_errors``) instead of leaving a resource out.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(allowed_protocols=("file",), fail_on_errors=True)
        self._root = root.resolve()

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            raise PacketError(f"packet resources must be template files, refused {url!r}")
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self._root) or not path.is_file():
            raise PacketError(f"not a file in the templates directory, refused {url!r}")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(
            path.as_uri(), body=path.read_bytes(), headers={"Content-Type": media_type}
        )


class _AttachmentFetcher(URLFetcher):
    """Hands WeasyPrint the bytes and media type of the in-memory attachments, by their
    ``slmgate-attachment:NAME`` URL. One fetcher serves them all: each ``URLFetcher`` builds a
    urllib opener, which cost ~4 ms an attachment (seconds for a thousand)."""

    def __init__(self, attachments: Sequence[Attachment]) -> None:
        super().__init__(fail_on_errors=True)
        self._by_url = {_attachment_url(a): a for a in attachments}

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        attachment = self._by_url.get(url)
        if attachment is None:
            raise PacketError(f"not an attachment of this packet, refused {url!r}")
        return URLFetcherResponse(
            url, body=attachment.data, headers={"Content-Type": attachment.media_type},
        )


def _attachment_url(attachment: Attachment) -> str:
    return f"slmgate-attachment:{attachment.name}"


def render_packet(content: Mapping[str, Any], attachments: Sequence[Attachment], out: Path,
                  seal: Callable[[Sequence[str]], bytes] | None = None) -> None:
    """Writes the PDF atomically (temp file in the same directory, then os.replace).

    With ``seal`` (``_seal.sealer``), the rendered pages' digests are handed to it and the seal
    it returns is carried as one more attachment, ``packet-seal.dsse.json``, which the pages do
    not list (they could not: the seal is made from them).

    ``content`` must hold ``generated_at`` (ISO 8601 with a time zone) and ``decision``
    (with ``id`` and ``outcome``); every other key is optional and renders as "—" when
    absent or null. Attachments are embedded sorted by name; names must be unique.
    On any failure nothing is written at ``out`` (an existing file there is left as it was)
    and no temporary file remains. The packet is written with mode 0644.
    """
    created = generated_at(content)
    render_document(_TEMPLATE, packet_view(content), attachments, out, created, seal)


def generated_at(content: Mapping[str, Any]) -> datetime:
    """``content["generated_at"]`` as an aware UTC datetime, whole seconds."""
    raw = content.get("generated_at")
    if not isinstance(raw, str):
        raise PacketError("content is missing required key 'generated_at' (ISO 8601 string)")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise PacketError(f"generated_at is not an ISO 8601 timestamp: {raw!r}") from exc
    if when.tzinfo is None:
        raise PacketError(f"generated_at needs a time zone: {raw!r}")
    return when.astimezone(UTC).replace(microsecond=0)


def render_document(
    template: str, view: Mapping[str, Any], attachments: Sequence[Attachment], out: Path,
    created: datetime, seal: Callable[[Sequence[str]], bytes] | None = None,
) -> None:
    """Render ``template`` (a file of ``slmgate.templates``) with ``view`` into a PDF/A-3b at
    ``out``, atomically, with ``attachments`` as associated files and every date from
    ``created``. The template sees ``view``, ``attachments`` (name, description, media type,
    size, sha256) and ``created``. With ``seal``, the pages' digests are handed to it and the
    seal it returns is carried as one more associated file, which the pages do not list."""
    out = Path(out)
    created = created.astimezone(UTC).replace(microsecond=0)
    ordered = _ordered(attachments)
    listed = [
        {"name": a.name, "description": a.description, "media_type": a.media_type,
         "size": len(a.data), "sha256": "sha256:" + hashlib.sha256(a.data).hexdigest()}
        for a in ordered
    ]
    with importlib.resources.as_file(importlib.resources.files("slmgate.templates")) as root:
        html = _render_html(root, template, {
            **view, "attachments": listed, "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
        fetcher = TemplateFetcher(root)
        try:
            document = weasyprint.HTML(
                string=html, base_url=root.as_uri() + "/", url_fetcher=fetcher
            ).render()
        except FatalURLFetchingError as exc:
            raise PacketError(f"packet render refused a resource: {exc.__cause__}") from exc
        fetch_attachment = _AttachmentFetcher(ordered)
        pdf_attachments = [_pdf_attachment(a, created, fetch_attachment) for a in ordered]

        def finish(document: Any, pdf: Any) -> None:
            _associated_files_once(document, pdf)
            if seal is not None:
                _attach_seal(pdf, seal, created)

        with _atomic_target(out) as target, _source_date_epoch(created):
            document.write_pdf(
                target,
                pdf_variant="pdf/a-3b",
                # Not random in WeasyPrint 70: the MD5 of the serialised PDF objects,
                # so it is as reproducible as the rest of the bytes.
                pdf_identifier=True,
                attachments=pdf_attachments,
                finisher=finish,
            )


def render_html(template: str, view: Mapping[str, Any]) -> str:
    """The HTML of ``template`` (a file of ``slmgate.templates``) with ``view``: the environment
    and filters of the PDFs, for documents also published as HTML (the program report)."""
    with importlib.resources.as_file(importlib.resources.files("slmgate.templates")) as root:
        return _render_html(root, template, view)


def _associated_files_once(document: Any, pdf: Any) -> None:
    """WeasyPrint 70 lists each attachment twice in the catalog's ``/AF`` array (once from the
    ``EmbeddedFiles`` name tree, once from the file specification itself); PDF/A-3 wants each
    associated file once. Keeps the first of each reference, in WeasyPrint's order, so the bytes
    stay a function of the inputs."""
    listed = pdf.catalog.get("AF")
    if not listed:
        return
    once = list(dict.fromkeys(listed))
    listed.clear()
    listed.extend(once)


def _attach_seal(pdf: Any, seal: Callable[[Sequence[str]], bytes], created: datetime) -> None:
    """Take the page digests of the finished ``pdf`` (pydyf, about to be written) and attach the
    seal made from them, without laying out or painting anything twice.

    The document is serialised once into memory and read back with pypdf, exactly as ``packet
    verify`` will read the file; pydyf's ``write`` appends its cross-reference objects and sets
    offsets, which are undone before the seal's two objects are added (object numbers and
    offsets do not enter a page digest). Relies on pydyf's ``PDF`` (``objects``,
    ``current_position``, ``xref_position``; pydyf is pinned in constraints.txt) and on
    WeasyPrint's own attachment writer; the render tests verify every sealed packet against its
    seal, so a change in either shows as a failing test, never as a wrong seal."""
    count = len(pdf.objects)
    trial = io.BytesIO()
    pdf.write(trial, b"1.7", False, True)
    del pdf.objects[count:]
    pdf.current_position, pdf.xref_position = 0, None
    pages = page_digests(PdfReader(trial))
    if bad := [d for d in pages if not d.startswith("sha256:")]:
        raise PacketError(f"the rendered packet has a page that cannot be digested ({bad[0]})")
    attachment = Attachment(SEAL_NAME, seal(pages), "The gate's signature over the digest of every page")
    spec = write_pdf_attachment(pdf, _pdf_attachment(attachment, created, _AttachmentFetcher([attachment])),
                                True)
    if spec is None:
        raise PacketError("the packet seal could not be attached")
    spec["AFRelationship"] = "/Source"
    names = pdf.objects[int(pdf.catalog["Names"]["EmbeddedFiles"].split()[0])]["Names"]
    keys = [bytes(names[i].string) for i in range(0, len(names), 2)]  # file names, as bytes
    at = bisect.bisect(keys, bytes(spec["F"].string))  # a name tree is sorted by key
    names[2 * at:2 * at] = [spec["F"], spec.reference]
    pdf.catalog["AF"].append(spec.reference)


def _ordered(attachments: Sequence[Attachment]) -> list[Attachment]:
    ordered = sorted(attachments, key=lambda a: a.name)
    if dupes := sorted(n for n, k in Counter(a.name for a in ordered).items() if k > 1):
        raise PacketError(f"attachment names must be unique, repeated: {', '.join(dupes)}")
    return ordered


def _pdf_attachment(attachment: Attachment, created: datetime,
                    fetcher: _AttachmentFetcher) -> weasyprint.Attachment:
    # WeasyPrint writes these naive datetimes with a "Z" suffix, so they must be UTC.
    stamp = created.replace(tzinfo=None)
    return weasyprint.Attachment(
        url=_attachment_url(attachment),
        url_fetcher=fetcher,
        name=attachment.name,
        description=attachment.description,
        created=stamp,
        modified=stamp,
        relationship="Source",
    )


@contextlib.contextmanager
def _source_date_epoch(when: datetime) -> Iterator[None]:
    """Pins the ``head.modified`` stamp fontTools writes into every font subset it saves.

    Without HarfBuzz-Subset, WeasyPrint subsets fonts with fontTools, which stamps the
    current time unless SOURCE_DATE_EPOCH (reproducible-builds.org) is set. WeasyPrint has no
    option for it, so the variable is set around ``write_pdf`` and restored afterwards.
    """
    with _EPOCH_LOCK:
        previous = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = str(int(when.timestamp()))
        try:
            yield
        finally:
            if previous is None:
                del os.environ["SOURCE_DATE_EPOCH"]
            else:
                os.environ["SOURCE_DATE_EPOCH"] = previous


@contextlib.contextmanager
def _atomic_target(out: Path) -> Iterator[Any]:
    """Yields a binary file in out's directory that replaces ``out`` only on success."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _PACKET_MODE)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- HTML -----------------------------------------------------------------------------------


def _dash(value: Any) -> Any:
    return _DASH if value is None or value == "" else value


def _number(value: Any, signed: bool = False) -> str:
    if value is None or value == "":
        return _DASH
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    text = f"{value:{'+' if signed else ''},.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text


def _joined(value: Any) -> str:
    items = [str(v) for v in value or []]
    return ", ".join(items) if items else _DASH


def _render_html(root: Path, template: str, view: Mapping[str, Any]) -> str:
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["dash"] = _dash
    env.filters["number"] = _number
    env.filters["joined"] = _joined
    env.tests["prefixed"] = lambda value, prefix: str(value).startswith(prefix)
    try:
        source = (root / template).read_text(encoding="utf-8")
        return env.from_string(source).render(**view)
    except OSError as exc:
        raise PacketError(f"packet template {template!r} unreadable: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise PacketError(f"packet template failed: {exc}") from exc
