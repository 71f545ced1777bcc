"""Every page of a packet bound to the signed record: page digests, and the first page that differs.

``packet verify`` checks the pages one of two ways (``engine/packet/_verify.py``, step 7):

- **against the packet seal**, when the packet carries one: the gate signed the digest of every
  page when it rendered the packet (``_seal.py``), with the key that signed the decision record.
  Checking costs one pass over the pages (about 0.3 s for a 1,000-envelope packet here, against
  ~5 s to render it again), and it keeps old packets verifiable after slmgate, WeasyPrint or the
  fonts are upgraded, where a re-render would differ and fail;
- **by re-rendering**, when it carries none (``packet render`` without ``--signing-key``) or
  ``--rerender`` is asked: the renderer is deterministic (same inputs, same bytes), and the
  verifier has already rebuilt, from the attached signed record, request, envelopes and bundle,
  everything the packet is rendered from; comparing page by page checks each page against *what
  the signed record says*, not only against what the gate drew. It needs the renderer the
  packet was made with (same slmgate, WeasyPrint and fonts); when they differ, pages differ and
  verification fails closed, naming the page — never the other way round.

What a page is, for the comparison: the page dictionary with every object it reaches — content
streams, resources (fonts, images and form XObjects, colour spaces, patterns, graphics states),
annotations, boxes, rotation — serialised canonically (sorted keys, references followed, each
stream's raw bytes and, when decodable, its decoded bytes). Object numbers do not matter;
``/Parent`` and references to other pages are replaced by the page's position, so reordering
shows. Any change to what a reader sees on a page changes its digest. A stream is represented
by the digest of its own canonical form (its dictionary, raw and decoded bytes, and everything
they reach), computed once per document: the fonts every page shares are hashed once, not once
a page. The format is named (``PAGE_DIGEST_FORMAT``) in every seal, so a change to it is a
refusal to compare, never a silent mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

__all__ = ["PAGE_DIGEST_FORMAT", "first_differing_page", "page_digests"]

PAGE_DIGEST_FORMAT = "slmgate-page/2"

# Inherited page attributes (ISO 32000-1, 7.7.3.4): a page shows them even when its parent holds them.
_INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")


class _Canonical:
    """Canonical bytes of one page's object graph."""

    def __init__(self, page_numbers: dict[int, int], streams: dict[tuple[int, int], bytes]) -> None:
        self.page_numbers = page_numbers  # id of a page's indirect object -> 1-based position
        self.streams = streams  # (object number, generation) of a stream -> its digest, per document
        self.visited: dict[tuple[int, int], int] = {}
        self.out = hashlib.sha256()

    def emit(self, data: bytes) -> None:
        self.out.update(b"%d:" % len(data) + data)

    def value(self, obj: Any) -> None:
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if obj.idnum in self.page_numbers:
                self.emit(b"page#%d" % self.page_numbers[obj.idnum])
                return
            if ref in self.visited:  # shared or cyclic: named by first-visit order
                self.emit(b"ref#%d" % self.visited[ref])
                return
            self.visited[ref] = len(self.visited)
            target = obj.get_object()
            if isinstance(target, StreamObject):  # self-contained, so hashed once per document
                digest = self.streams.get(ref)
                if digest is None:
                    inner = _Canonical(self.page_numbers, self.streams)
                    inner.value(target)
                    digest = self.streams[ref] = inner.out.digest()
                self.emit(b"stream-digest" + digest)
                return
            self.value(target)
        elif isinstance(obj, StreamObject):
            self.emit(b"stream")
            self.dictionary(obj)
            self.emit(bytes(obj._data or b""))  # as stored: no byte may change unseen
            try:
                self.emit(b"decoded" + obj.get_data())
            except Exception:  # a stream that does not decode: its raw bytes decide
                self.emit(b"undecodable")
        elif isinstance(obj, DictionaryObject):
            self.dictionary(obj)
        elif isinstance(obj, ArrayObject):
            self.emit(b"array%d" % len(obj))
            for item in obj:
                self.value(item)
        elif isinstance(obj, NameObject):
            self.emit(b"name" + str(obj).encode())
        elif isinstance(obj, (TextStringObject, ByteStringObject)):
            raw = obj.original_bytes if isinstance(obj, TextStringObject) else bytes(obj)
            self.emit(b"string" + raw)
        elif isinstance(obj, BooleanObject):
            self.emit(b"true" if obj else b"false")
        elif isinstance(obj, (NumberObject, FloatObject)):
            self.emit(b"number" + repr(obj).encode())
        elif obj is None or isinstance(obj, NullObject):
            self.emit(b"null")
        else:  # unknown object types are compared by their representation
            self.emit(type(obj).__name__.encode() + repr(obj).encode())

    def dictionary(self, obj: DictionaryObject, skip: Sequence[str] = ()) -> None:
        keys = sorted(k for k in obj if k not in skip and k not in ("/Length",))
        self.emit(b"dict%d" % len(keys))
        for key in keys:
            self.emit(str(key).encode())
            self.value(obj.raw_get(key))


def page_digests(pdf: Path | PdfReader) -> list[str]:
    """``sha256:`` of each page's canonical object graph, in page order. An unreadable page
    yields ``unreadable:<error>``, which matches no digest."""
    reader = pdf if isinstance(pdf, PdfReader) else PdfReader(pdf)
    pages = list(reader.pages)
    numbers = {p.indirect_reference.idnum: i + 1 for i, p in enumerate(pages)
               if p.indirect_reference is not None}
    digests = []
    streams: dict[tuple[int, int], bytes] = {}
    for page in pages:
        try:
            canon = _Canonical(numbers, streams)
            canon.dictionary(page, skip=("/Parent", *_INHERITED))
            for key in _INHERITED:  # pypdf resolves inheritance through the page tree
                inherited = page.get_inherited(key, None) if hasattr(page, "get_inherited") \
                    else page.get(key)
                canon.emit(key.encode())
                canon.value(inherited if inherited is not None else NullObject())
            digests.append("sha256:" + canon.out.hexdigest())
        except Exception as exc:  # pypdf raises many types on a damaged page
            digests.append(f"unreadable:{type(exc).__name__}")
    return digests


def first_differing_page(expected: Sequence[str], actual: Sequence[str]) -> int | None:
    """1-based number of the first page of ``actual`` that is not ``expected``'s page at the
    same position (a page dropped or added counts from where the lists part); ``None`` if equal."""
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return i + 1
    if len(expected) != len(actual):
        return min(len(expected), len(actual)) + 1
    return None
