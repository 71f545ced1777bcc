"""Weights manifests: agreement with model-signing (per file, per shard, sha256 and blake3),
symlink and special-file refusals, sorted diffs, round trips and bounded memory."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import random
import sys
import tracemalloc
import types
from pathlib import Path
from typing import Any

import pytest

from slmgate.evidence import ManifestDiff, WeightsManifest, hash_model_dir
from slmgate.evidence.errors import InputError

FILES: dict[str, int | bytes] = {
    "model-00001-of-00002.safetensors": 5000,  # shard boundaries at 1000, 2000, ... inside
    "model-00002-of-00002.safetensors": 2500,
    "config.json": b'{"architectures": ["Triage"], "dtype": "float32"}\n',
    "tokenizer/tokenizer.json": 1200,
    "tokenizer/special_tokens_map.json": b'{"pad_token": "<pad>"}',
    # path-component order differs from string order here: "a/b" < "a-b" < "a.txt"
    "a/b": b"b", "a-b": b"-", "a.txt": b".",
    "big-offsets.bin": 12_345,  # shard "…:10000:11000" sorts after "…:2000:3000" numerically
    "empty.txt": b"",
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".gitattributes": b"*.safetensors filter=lfs\n",
}


def make_model(root: Path) -> Path:
    rng = random.Random(7)
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(content) if isinstance(content, int) else content)
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")


# --------------------------------------------------------------------------- model-signing


@functools.cache
def _model_signing() -> tuple[Any, Any]:
    """model_signing's hashing API and its Payload (statement) builder, or skip.

    Its package ``__init__`` imports the signing stack (pyOpenSSL, sigstore); where that is
    missing, its hashing modules are loaded alone — they need none of it."""
    spec = importlib.util.find_spec("model_signing")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("model-signing is not installed")
    try:
        hashing = importlib.import_module("model_signing.hashing")
    except ImportError:
        for name in [m for m in sys.modules if m == "model_signing" or m.startswith("model_signing.")]:
            del sys.modules[name]
        package = types.ModuleType("model_signing")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["model_signing"] = package
        hashing = importlib.import_module("model_signing.hashing")
    try:
        signing = importlib.import_module("model_signing._signing.signing")
    except ImportError as exc:
        pytest.skip(f"model-signing's statement builder cannot be imported: {exc}")
    return hashing, signing.Payload


def _model_signing_statement(model: Path, configure: str, **kwargs: Any) -> dict[str, Any]:
    hashing, payload = _model_signing()  # skips first when model-signing is absent
    json_format = pytest.importorskip("google.protobuf.json_format")
    config = getattr(hashing.Config(), configure)(**kwargs)
    statement: dict[str, Any] = json_format.MessageToDict(payload(config.hash(model)).statement.pb)
    return statement


CASES = [
    pytest.param({}, "use_file_serialization", {}, id="files-sha256"),
    pytest.param({"shard_size": 1000}, "use_shard_serialization", {"shard_size": 1000},
                 id="shards-sha256"),
    pytest.param({"algorithm": "blake3"}, "use_file_serialization",
                 {"hashing_algorithm": "blake3"}, id="files-blake3"),
    # model-signing serializes blake3 per file even when asked for shards
    pytest.param({"algorithm": "blake3"}, "use_shard_serialization",
                 {"hashing_algorithm": "blake3", "shard_size": 1000}, id="shards-blake3"),
]


@pytest.mark.parametrize(("ours", "configure", "theirs"), CASES)
def test_agrees_with_model_signing(model: Path, ours: dict[str, Any], configure: str,
                                   theirs: dict[str, Any]) -> None:
    statement = _model_signing_statement(model, configure, **theirs)
    manifest = hash_model_dir(model, **ours)
    predicate = manifest.to_predicate("2026-01-01T00:00:00Z")
    assert manifest.root_digest == statement["subject"][0]["digest"]["sha256"]
    assert predicate["resources"] == statement["predicate"]["resources"]  # same order too
    expected = dict(statement["predicate"]["serialization"])
    expected["ignore_paths"] = sorted(expected["ignore_paths"])  # model-signing: set order
    assert predicate["serialization"] == expected
    assert statement["subject"][0]["name"] == manifest.model_name == "model"


def test_the_fixture_exercises_the_traps(model: Path) -> None:
    files = hash_model_dir(model)
    assert [r.name for r in files.resources][:3] == ["a/b", "a-b", "a.txt"]
    assert "empty.txt" in {r.name for r in files.resources}
    assert not any(r.name.startswith(".git") for r in files.resources)
    shards = hash_model_dir(model, shard_size=1000)
    names = [r.name for r in shards.resources]
    assert names.index("big-offsets.bin:2000:3000") < names.index("big-offsets.bin:10000:11000")
    assert "model-00001-of-00002.safetensors:1000:2000" in names
    assert not any(n.startswith("empty.txt") for n in names)  # an empty file has no shard
    assert {r.algorithm for r in shards.resources} == {"sha256-sharded-1000"}


def test_shard_digests_are_the_bytes_of_the_range(model: Path) -> None:
    data = (model / "model-00001-of-00002.safetensors").read_bytes()
    shards = {r.name: r.digest for r in hash_model_dir(model, shard_size=1000).resources}
    assert shards["model-00001-of-00002.safetensors:4000:5000"] == \
        hashlib.sha256(data[4000:5000]).hexdigest()


@pytest.mark.parametrize("kwargs", [{"workers": 1, "chunk_size": 7}, {"workers": 16, "chunk_size": 1 << 20},
                                    {"workers": 3, "chunk_size": 999, "shard_size": 1000},
                                    {"workers": 1, "chunk_size": 64, "algorithm": "blake3"}])
def test_threads_and_chunks_do_not_change_the_result(model: Path, kwargs: dict[str, Any]) -> None:
    reference = {k: v for k, v in kwargs.items() if k in ("shard_size", "algorithm")}
    assert hash_model_dir(model, **kwargs) == hash_model_dir(model, **reference)


# --------------------------------------------------------------------------- refusals


def test_symlinks_are_refused_never_followed(model: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"not part of the model")
    for link, target in (("weights.bin", outside), ("inside.json", model / "config.json"),
                         ("linked-dir", tmp_path)):
        (model / link).symlink_to(target)
        with pytest.raises(InputError, match="symbolic link") as info:
            hash_model_dir(model)
        assert link in str(info.value)
        (model / link).unlink()
    (tmp_path / "alias").symlink_to(model)
    with pytest.raises(InputError, match="symbolic link"):
        hash_model_dir(tmp_path / "alias")


def test_symlinks_inside_ignored_paths_do_not_matter(model: Path, tmp_path: Path) -> None:
    before = hash_model_dir(model)
    (model / ".git" / "hooks").symlink_to(tmp_path)
    assert hash_model_dir(model) == before


def test_special_files_are_refused(model: Path) -> None:
    os.mkfifo(model / "pipe")
    with pytest.raises(InputError, match="not a regular file"):
        hash_model_dir(model)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"algorithm": "md5"}, "unknown hash algorithm"),
    ({"shard_size": 0}, "shard size must be a positive"),
    ({"algorithm": "blake3", "shard_size": 1 << 20}, "blake3 is not sharded"),
])
def test_bad_options_are_refused(model: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        hash_model_dir(model, **kwargs)


def test_empty_and_missing_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a model directory"):
        hash_model_dir(tmp_path / "nope")
    (tmp_path / "only-empty").mkdir()
    (tmp_path / "only-empty" / "empty.txt").write_bytes(b"")
    assert len(hash_model_dir(tmp_path / "only-empty").resources) == 1
    with pytest.raises(InputError, match="no files to hash"):
        hash_model_dir(tmp_path / "only-empty", shard_size=10)


# --------------------------------------------------------------------------- diff, round trip


def test_diff_names_extra_missing_and_changed_files_sorted(model: Path) -> None:
    expected = hash_model_dir(model)
    (model / "zz-extra.bin").write_bytes(b"x")
    (model / "aa-extra.bin").write_bytes(b"y")
    (model / "a.txt").unlink()
    (model / "config.json").write_bytes(b"{}")
    (model / "tokenizer" / "tokenizer.json").write_bytes(b"[]")
    diff = expected.diff(hash_model_dir(model))
    assert diff == ManifestDiff(extra=("aa-extra.bin", "zz-extra.bin"), missing=("a.txt",),
                                changed=("config.json", "tokenizer/tokenizer.json"))
    assert diff.describe() == ("extra: aa-extra.bin, zz-extra.bin; missing: a.txt; "
                               "changed: config.json, tokenizer/tokenizer.json")
    assert not expected.diff(expected)


def test_sharded_diff_is_per_file(model: Path) -> None:
    expected = hash_model_dir(model, shard_size=1000)
    with (model / "big-offsets.bin").open("ab") as fh:
        fh.write(b"grown")  # its shard names change, and it is one changed file
    data = bytearray((model / "model-00002-of-00002.safetensors").read_bytes())
    data[2100] ^= 1
    (model / "model-00002-of-00002.safetensors").write_bytes(bytes(data))
    diff = expected.diff(hash_model_dir(model, shard_size=1000))
    assert diff == ManifestDiff((), (), ("big-offsets.bin", "model-00002-of-00002.safetensors"))


def test_diff_refuses_other_serializations(model: Path) -> None:
    with pytest.raises(ValueError, match="same serialization"):
        hash_model_dir(model).diff(hash_model_dir(model, shard_size=1000))


@pytest.mark.parametrize("kwargs", [{}, {"shard_size": 1000}, {"algorithm": "blake3"}])
def test_predicate_round_trip(model: Path, kwargs: dict[str, Any]) -> None:
    manifest = hash_model_dir(model, **kwargs)
    predicate = manifest.to_predicate("2026-01-01T00:00:00Z")
    assert WeightsManifest.from_predicate(manifest.model_name, predicate) == manifest
    shuffled = dict(predicate, resources=list(reversed(predicate["resources"])))
    assert WeightsManifest.from_predicate("m", shuffled).root_digest == manifest.root_digest


@pytest.mark.parametrize("mutate", [
    lambda p: p["resources"][0].update(digest="zz"),
    lambda p: p["serialization"].update(method="tensors"),
    lambda p: p["resources"][0].update(name="no-offsets"),
    lambda p: p["serialization"].update(shard_size=0),
])
def test_malformed_predicates_raise_value_error(model: Path, mutate: Any) -> None:
    predicate = hash_model_dir(model, shard_size=1000).to_predicate("2026-01-01T00:00:00Z")
    mutate(predicate)
    with pytest.raises(ValueError):
        WeightsManifest.from_predicate("m", predicate)


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("shard_size", [None, 4 << 20])
def test_memory_stays_bounded_by_workers_times_chunk(tmp_path: Path, shard_size: int | None) -> None:
    root = tmp_path / "big"
    root.mkdir()
    block = os.urandom(1 << 20)
    with (root / "weights.bin").open("wb") as fh:
        for _ in range(24):
            fh.write(block)
    (root / "other.bin").write_bytes(block * 8)
    tracemalloc.start()
    try:
        manifest = hash_model_dir(root, workers=2, chunk_size=1 << 20, shard_size=shard_size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes for 32 MiB of weights"
    whole = hashlib.sha256((root / "weights.bin").read_bytes()).hexdigest()
    if shard_size is None:
        assert {r.name: r.digest for r in manifest.resources}["weights.bin"] == whole


def test_progress_reaches_the_total(model: Path) -> None:
    calls: list[tuple[int, int]] = []
    hash_model_dir(model, progress=lambda done, total: calls.append((done, total)), chunk_size=500)
    total = sum(len(c) if isinstance(c, bytes) else c for n, c in FILES.items()
                if not n.startswith(".git"))
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_a_file_that_shrinks_while_hashing_is_refused(tmp_path: Path, algorithm: str) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 10_000)  # the bigger file is hashed first
    (root / "b.bin").write_bytes(b"b" * 1_000)

    def truncate_b(done: int, total: int) -> None:
        os.truncate(root / "b.bin", 10)

    with pytest.raises(InputError, match=r"b\.bin: shrank while being hashed"):
        hash_model_dir(root, algorithm=algorithm, workers=1, chunk_size=4096,  # type: ignore[arg-type]
                       progress=truncate_b)


def test_chunk_size_must_be_positive(model: Path) -> None:
    with pytest.raises(InputError, match="chunk size"):
        hash_model_dir(model, chunk_size=0)


@pytest.mark.parametrize("diff", [ManifestDiff(("x",), (), ()), ManifestDiff((), ("x",), ()),
                                  ManifestDiff((), (), ("x",))])
def test_any_one_kind_of_difference_is_a_difference(diff: ManifestDiff) -> None:
    """An extra file alone, a missing one alone or a changed one alone must fail a weights check."""
    assert diff
    assert not ManifestDiff((), (), ())
    assert diff.to_json() == {"extra": list(diff.extra), "missing": list(diff.missing),
                              "changed": list(diff.changed)}


def test_a_sharded_file_with_colons_in_its_name_round_trips(tmp_path: Path) -> None:
    """Shard names are ``path:start:end``; the path itself may hold colons."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights:v2:final.bin").write_bytes(bytes(range(256)) * 10)
    manifest = hash_model_dir(tmp_path / "m", shard_size=1000)
    assert [r.name for r in manifest.resources][:2] == ["weights:v2:final.bin:0:1000",
                                                        "weights:v2:final.bin:1000:2000"]
    again = WeightsManifest.from_predicate(manifest.model_name, manifest.to_predicate("2026-11-20T12:00:00Z"))
    assert again == manifest and not manifest.diff(again)


def test_a_manifest_defaults_to_sha256_files_with_the_default_ignores(model: Path) -> None:
    made = hash_model_dir(model)
    plain = WeightsManifest(made.model_name, made.resources)
    assert plain == made
    assert plain.serialization["method"] == "files" and plain.serialization["hash_type"] == "sha256"


def test_a_predicate_without_method_or_hash_type_reads_as_sha256_files(model: Path) -> None:
    """model-signing may leave both out: absent means its defaults, not an error."""
    made = hash_model_dir(model)
    predicate = made.to_predicate("2026-11-20T12:00:00Z")
    del predicate["serialization"]["method"], predicate["serialization"]["hash_type"]
    assert WeightsManifest.from_predicate(made.model_name, predicate) == made


@pytest.mark.parametrize("serialization", [[], "files", None])
def test_a_serialization_that_is_not_an_object_raises_type_error(model: Path, serialization: Any) -> None:
    """TypeError, which verification turns into a refusal; never an AttributeError crash."""
    predicate = hash_model_dir(model).to_predicate("2026-01-01T00:00:00Z")
    predicate["serialization"] = serialization
    with pytest.raises(TypeError, match="serialization must be an object"):
        WeightsManifest.from_predicate("m", predicate)


def test_a_shard_of_one_byte_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"abc")
    manifest = hash_model_dir(tmp_path / "m", shard_size=1)
    assert [r.name for r in manifest.resources] == ["w.bin:0:1", "w.bin:1:2", "w.bin:2:3"]
    assert WeightsManifest.from_predicate("m", manifest.to_predicate("2026-01-01T00:00:00Z")) == manifest


def test_a_file_that_grows_while_hashing_is_refused(tmp_path: Path) -> None:
    """Bytes appended while a file is hashed would be signed as absent: refused, never hashed."""
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 100)

    def grow(done: int, total: int) -> None:
        if done == total:  # the listed bytes are all read; the file grows before the size check
            with (root / "a.bin").open("ab") as fh:
                fh.write(b"more")

    with pytest.raises(InputError, match=r"a\.bin: changed size while being hashed"):
        hash_model_dir(root, workers=1, chunk_size=7, progress=grow)


@pytest.mark.parametrize("ignore", [["/"], [""]])
def test_an_empty_ignore_path_ignores_nothing(model: Path, ignore: list[str]) -> None:
    """A misconfigured ignore path must never hide the whole model from the manifest."""
    assert hash_model_dir(model, ignore_paths=ignore).resources == \
        hash_model_dir(model, ignore_paths=()).resources


def test_a_directory_that_cannot_be_listed_is_named(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scandir = os.scandir

    def refuse(path: Any) -> Any:
        if Path(path).name == "tokenizer":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(InputError, match=r"tokenizer: cannot list \(Permission denied\)"):
        hash_model_dir(model)


@pytest.mark.parametrize("swap, message", [
    ("remove", r"b\.bin: cannot open \(No such file or directory\)"),
    ("directory", r"b\.bin: no longer a regular file"),
])
def test_a_file_swapped_after_listing_is_refused(tmp_path: Path, swap: str, message: str) -> None:
    """Between listing and hashing a file can go, or become something else: a clear refusal."""
    root = tmp_path / "m"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 10_000)  # the bigger file is hashed first
    (root / "b.bin").write_bytes(b"b" * 1_000)

    def swap_b(done: int, total: int) -> None:
        if (root / "b.bin").is_file():
            (root / "b.bin").unlink()
            if swap == "directory":
                (root / "b.bin").mkdir()

    with pytest.raises(InputError, match=message):
        hash_model_dir(root, workers=1, chunk_size=4096, progress=swap_b)


def test_a_read_error_is_refused_never_hashed_as_a_shorter_file(model: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error mid-file must not leave the digest of the bytes read so far."""
    pread = os.pread
    calls = []

    def failing(fd: int, n: int, offset: int) -> bytes:
        calls.append(offset)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", failing)
    with pytest.raises(InputError, match=r"cannot read \(Input/output error\)"):
        hash_model_dir(model, workers=1, chunk_size=7)


def test_a_chunk_of_one_byte_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"abc")
    assert hash_model_dir(tmp_path / "m", chunk_size=1) == hash_model_dir(tmp_path / "m")
