"""Records of processing (GDPR Art. 30(1)) from the bundle: cross-checks that name the problem,
a CSV that a spreadsheet (and the csv module) reads as one row per activity, deterministic PDFs."""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pikepdf
import pytest
import yaml
from pypdf import PdfReader

from slmgate.engine import load_bundle
from slmgate.engine.packet._ropa import (
    CSV_COLUMNS,
    CSV_SEPARATOR,
    check_processing,
    packet_extract,
    processing_activities,
    processing_record,
    render_ropa_pdf,
    ropa_csv,
    ropa_json,
)
from slmgate.evidence.errors import InputError
from tests.conftest import World, recent

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(session_world: World) -> dict[str, Any]:
    return load_bundle(session_world.policies).data


@pytest.fixture(scope="module")
def trust(session_world: World) -> dict[str, Any]:
    return yaml.safe_load((session_world.policies / "trust.yaml").read_text())


def record(data: dict[str, Any], trust: dict[str, Any]) -> dict[str, Any]:
    return processing_record(data, trust, as_of=AS_OF, bundle_digest="sha256:" + "0" * 64,
                             policy_revision="abc123")


def test_one_activity_per_purpose_with_the_art30_contents(
    data: dict[str, Any], trust: dict[str, Any]
) -> None:
    r = record(data, trust)
    purposes = data["purposes"]["purposes"]
    assert [a["id"] for a in r["activities"]] == sorted(purposes)
    assert r["controller"] == data["charter"]["controller"]
    for a in r["activities"]:
        p = purposes[a["id"]]
        assert a["lawful_basis"] == p["lawful_basis"] and a["data_subjects"] == p["data_subjects"]
        assert f"{a['id']}: {p['retention_days']} days" in a["erasure_time_limits"]
        assert {d["id"] for d in a["datasets"]} == {
            d for d, v in data["purposes"]["datasets"].items() if v["purpose"] == a["id"]}
        assert a["security_measures"] and a["recipients"]
    routing = next(a for a in r["activities"] if a["id"] == "ticket_routing")
    assert any(x.startswith("contact_details:") for x in routing["personal_data"])
    assert any("Example GPU Cloud SE" in x for x in routing["recipients"])
    measures = " ".join(m["measure"] for m in r["security_measures"])
    assert "DSSE" in measures and "iso-27001" in measures and "Human in the loop" in measures


def test_a_dataset_whose_purpose_does_not_exist_is_named(data: dict[str, Any]) -> None:
    bad = copy.deepcopy(data)
    bad["purposes"]["datasets"]["shadow_copy"] = {
        "purpose": "marketing", "description": "x", "data_classes": ["ticket_text"], "retention_days": 1}
    with pytest.raises(InputError, match=r"datasets\.shadow_copy: purpose 'marketing' does not exist"):
        check_processing(bad)


def test_a_transfer_outside_residency_without_safeguard_is_named(data: dict[str, Any]) -> None:
    bad = copy.deepcopy(data)
    bad["subprocessors"]["subprocessors"]["us-annotators"] = {
        "name": "US Annotators", "service": "labelling", "data_classes": ["ticket_text"],
        "regions": ["us"], "assurances": []}
    outside = r"us-annotators: transfers ticket_text to us, outside its residency"
    with pytest.raises(InputError, match=outside):
        check_processing(bad)
    bad["subprocessors"]["subprocessors"]["us-annotators"]["transfer_safeguard"] = "EU SCCs 2021/914"
    check_processing(bad)
    activities = {a["id"]: a for a in processing_record(bad, {}, as_of=AS_OF, bundle_digest="x",
                                                       policy_revision=None)["activities"]}
    # declared but reached by no flow: no recipient of any activity, no transfer
    assert not any("us-annotators" in x for a in activities.values() for x in a["recipients"])
    bad["purposes"]["flows"]["us_labelling"] = {"from": "live_tickets", "to": "us-annotators",
                                                "access_role": "labeller", "description": "x"}
    routing = {a["id"]: a for a in processing_record(bad, {}, as_of=AS_OF, bundle_digest="x",
                                                    policy_revision=None)["activities"]}["ticket_routing"]
    assert routing["transfers"] == ["us-annotators: us (ticket_text) — safeguard: EU SCCs 2021/914"]


def test_csv_is_rfc4180_one_row_per_activity(data: dict[str, Any], trust: dict[str, Any]) -> None:
    r = record(data, trust)
    raw = ropa_csv(r)
    assert not raw.startswith(b"\xef\xbb\xbf")  # no BOM unless asked for
    assert ropa_csv(r, bom=True) == b"\xef\xbb\xbf" + raw  # --bom, for spreadsheets
    text = raw.decode("utf-8")
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + len(r["activities"])
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)
    by_id = {row[0]: dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    routing = by_id["ticket_routing"]
    assert routing["controller"] == data["charter"]["controller"]["name"]
    assert routing["dpo_contact"] == data["charter"]["controller"]["dpo"]
    assert "Example GPU Cloud SE" in routing["recipients"]  # commas and semicolons survive quoting
    assert routing["third_country_transfers"] == "none"
    assert routing["joint_controllers"] == "none" and routing["eu_representative"] == "none"
    # several values: one per line in the cell, and no value holds the separator
    for row in rows[1:]:
        for column, cell in zip(CSV_COLUMNS, row, strict=True):
            values = cell.split(CSV_SEPARATOR)
            assert all(v.strip() == v and v for v in values), (column, cell)
    assert routing["recipients"].split(CSV_SEPARATOR) == r["activities"][1]["recipients"]


def test_a_value_with_the_csv_separator_is_refused(data: dict[str, Any], trust: dict[str, Any]) -> None:
    bad = copy.deepcopy(data)
    bad["purposes"]["purposes"]["ticket_routing"]["data_subjects"] = ["customers\nand agents"]
    with pytest.raises(InputError, match=r"activity ticket_routing, column data_subjects"):
        ropa_csv(record(bad, trust))


def test_joint_controllers_and_representative_in_every_format(
        data: dict[str, Any], trust: dict[str, Any], tmp_path: Path) -> None:
    r = record(data, trust)
    assert r["joint_controllers"] == "none" and r["eu_representative"] == "none"
    named = copy.deepcopy(data)
    named["charter"]["joint_controllers"] = [
        {"name": "Example Holding AG", "contact": "privacy@holding.example",
         "responsibilities": "decides the retention of support data"}]
    named["charter"]["eu_representative"] = {"name": "EU Rep GmbH", "contact": "rep@eu.example"}
    n = record(named, trust)
    assert json.loads(ropa_json(n))["eu_representative"]["name"] == "EU Rep GmbH"
    text = ropa_csv(n).decode()
    assert "Example Holding AG <privacy@holding.example> (decides the retention" in text
    assert "EU Rep GmbH <rep@eu.example>" in text
    render_ropa_pdf(n, tmp_path / "ropa.pdf", AS_OF)
    pdf = " ".join(" ".join(p.extract_text() for p in PdfReader(tmp_path / "ropa.pdf").pages).split())
    assert "Joint controllers Example Holding AG" in pdf and "EU representative (Art. 27) EU Rep GmbH" in pdf
    render_ropa_pdf(r, tmp_path / "none.pdf", AS_OF)
    pdf = " ".join(PdfReader(tmp_path / "none.pdf").pages[0].extract_text().split())
    assert "Joint controllers none" in pdf and "EU representative (Art. 27) none" in pdf


def test_recipients_come_from_declared_flows(data: dict[str, Any], trust: dict[str, Any]) -> None:
    activities = {a["id"]: a for a in record(data, trust)["activities"]}
    serving, training = activities["ticket_routing"], activities["model_improvement"]
    # the serving path: the GPU cloud reads live tickets; the labelling vendor is not on it
    assert any(x.startswith("Example GPU Cloud SE (eu-gpu-cloud; processor") and
               "reads live_tickets as inference-host" in x for x in serving["recipients"])
    assert not any("labelling-vendor" in x or "artifact-registry" in x for x in serving["recipients"])
    assert any(x.startswith("support-leads (internal; reads live_tickets") for x in serving["recipients"])
    # the labelling vendor appears under the activity whose flow reaches it
    assert any("labelling-vendor" in x and "reads tickets_scrubbed as labeller" in x
               for x in training["recipients"])
    assert any("artifact-registry" in x for x in training["recipients"])


def test_a_dataset_kept_longer_than_its_purpose_is_refused_naming_both(
        data: dict[str, Any], session_world: World, tmp_path: Path) -> None:
    bad = copy.deepcopy(data)
    bad["purposes"]["datasets"]["tickets_scrubbed"]["retention_days"] = 1825
    with pytest.raises(InputError, match=r"datasets\.tickets_scrubbed\.retention_days: dataset "
                                         r"tickets_scrubbed is kept 1825 days, longer than the 365 days "
                                         r"of its purpose model_improvement"):
        check_processing(bad)
    broken = tmp_path / "policies"
    shutil.copytree(session_world.policies, broken, ignore=shutil.ignore_patterns(".git"))
    text = (broken / "purposes.yaml").read_text().replace("retention_days: 180", "retention_days: 400")
    (broken / "purposes.yaml").write_text(text)
    out = run("--policies", broken, "--format", "json")
    assert out.returncode == 2 and out.stdout == b""
    assert b"purposes.yaml" in out.stderr
    assert (b"derivative_flows.logged_prompts_for_distillation.retention_days: derivative flow "
            b"logged_prompts_for_distillation is kept 400 days, longer than the 365 days of its "
            b"purpose model_improvement") in out.stderr


def test_json_round_trips(data: dict[str, Any], trust: dict[str, Any]) -> None:
    r = record(data, trust)
    assert json.loads(ropa_json(r)) == json.loads(json.dumps(r))


def test_pdf_is_deterministic_pdfa_with_the_record_attached(
    data: dict[str, Any], trust: dict[str, Any], tmp_path: Path
) -> None:
    r = record(data, trust)
    render_ropa_pdf(r, tmp_path / "a.pdf", AS_OF)
    render_ropa_pdf(r, tmp_path / "b.pdf", AS_OF)
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    reader = PdfReader(tmp_path / "a.pdf")
    text = "".join(p.extract_text() for p in reader.pages)
    for needle in ("Records of processing activities", data["charter"]["controller"]["dpo"],
                   "Security measures", "ticket_routing", "Third-country"):
        assert needle in text
    assert json.loads(reader.attachments["ropa.json"][0]) == json.loads(ropa_json(r))
    with pikepdf.open(tmp_path / "a.pdf") as pdf:
        assert pdf.open_metadata()["pdfaid:part"] == "3"
        assert all(spec.AFRelationship == pikepdf.Name.Source for spec in pdf.Root.AF)


def test_packet_extract_covers_what_the_promotion_touches(data: dict[str, Any]) -> None:
    extract = packet_extract(data, {"purpose": "ticket_routing", "regions": ["eu"],
                                    "subprocessors": ["eu-gpu-cloud", "nobody"]},
                             [{"dataset": "tickets_scrubbed", "oldest_record": "2026-06-01"}])
    assert extract is not None
    assert [p["id"] for p in extract["purposes"]] == ["ticket_routing", "model_improvement"]
    assert [s["id"] for s in extract["subprocessors"]] == ["eu-gpu-cloud", "nobody"]
    assert extract["subprocessors"][1]["name"] == "not declared in subprocessors.yaml"
    assert {f["source"] for f in extract["flows"]} == {"tickets_scrubbed"}
    assert packet_extract(data, None, []) is None


def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "ropa", *map(str, args)],
                          capture_output=True, timeout=120)


def test_cli_writes_csv_and_refuses_a_dataset_without_purpose(session_world: World, tmp_path: Path) -> None:
    ok = run("--policies", session_world.policies, "--format", "csv", "--as-of", "2026-11-20T12:00:00Z")
    assert ok.returncode == 0, ok.stderr
    assert len(list(csv.reader(io.StringIO(ok.stdout.decode("utf-8"), newline="")))) >= 3
    assert not ok.stdout.startswith(b"\xef\xbb\xbf")
    with_bom = run("--policies", session_world.policies, "--format", "csv", "--bom",
                   "--as-of", "2026-11-20T12:00:00Z")
    assert with_bom.stdout == b"\xef\xbb\xbf" + ok.stdout
    broken = tmp_path / "policies"
    shutil.copytree(session_world.policies, broken, ignore=shutil.ignore_patterns(".git"))
    doc = yaml.safe_load((broken / "purposes.yaml").read_text())
    doc["datasets"]["shadow_copy"] = {"purpose": "marketing", "description": "x",
                                      "data_classes": ["ticket_text"], "retention_days": 1}
    (broken / "purposes.yaml").write_text(yaml.safe_dump(doc))
    bad = run("--policies", broken, "--format", "json")
    assert bad.returncode == 2
    assert b"shadow_copy" in bad.stderr and b"marketing" in bad.stderr
    assert bad.stdout == b""
    assert run("--policies", session_world.policies, "--format", "pdf").returncode == 2  # needs -o


def test_data_cards_give_recipients_and_sources(world: World, tmp_path: Path) -> None:
    """`slmgate ropa --data-cards DIR`: recipients from the cards' access roles, sources from
    their provenance, a derivative named with the dataset it came from."""
    cards = tmp_path / "cards"
    cards.mkdir()
    source = ("tickets_scrubbed", world.dataset_sha("tickets_scrubbed"))
    (cards / "scrubbed.dsse.json").write_bytes(world.data_card("tickets_scrubbed", recent()))
    (cards / "logged.dsse.json").write_bytes(
        world.data_card("logged_prompts_for_distillation", recent(), source=source,
                        access_role="distillation-team"))
    run = [sys.executable, "-m", "slmgate.engine.cli", "ropa", "--policies", str(world.policies),
           "--format", "json", "--data-cards", str(cards)]
    r = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    training = {a["id"]: a for a in json.loads(r.stdout)["activities"]}["model_improvement"]
    assert any(x.startswith("distillation-team (internal; reads logged_prompts_for_distillation")
               for x in training["recipients"])
    assert any(x.startswith("ml-engineering (internal; reads tickets_scrubbed")
               for x in training["recipients"])
    assert training["data_sources"] == [
        f"logged_prompts_for_distillation: derived from tickets_scrubbed (sha256:{source[1][:16]}…)",
        "tickets_scrubbed: customer provided (support-desk tickets (MSA 2024-07))"]
    (cards / "forged.dsse.json").write_bytes(
        world.data_card("golden_sets", recent(), signer="trainer"))
    r = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and "forged.dsse.json" in r.stderr and not r.stdout


def test_a_dataset_without_personal_data_is_not_bounded_by_its_purpose_and_says_so(
        data: dict[str, Any]) -> None:
    """The golden suites are synthetic and kept as long as the releases they measured (1825 days):
    no storage limit applies, and the record says there is no erasure limit rather than inventing one."""
    golden = data["purposes"]["datasets"]["golden_sets"]
    assert golden["personal_data"] is False and golden["retention_days"] == 1825
    check_processing(data)  # no refusal: 1825 > the purpose's 365 is allowed here
    training = next(a for a in processing_activities(data, []) if a["id"] == "model_improvement")
    assert "dataset golden_sets: none (no personal data; kept 1825 days)" in training["erasure_time_limits"]
    assert "dataset tickets_scrubbed: 365 days" in training["erasure_time_limits"]


def test_declaring_no_personal_data_on_a_dataset_with_a_personal_class_is_refused(
        data: dict[str, Any]) -> None:
    bad = copy.deepcopy(data)
    bad["purposes"]["datasets"]["tickets_scrubbed"]["personal_data"] = False
    with pytest.raises(InputError, match=r"datasets\.tickets_scrubbed\.personal_data: dataset "
                                         r"tickets_scrubbed is declared to hold no personal data, but "
                                         r"its data classes ticket_text are personal"):
        check_processing(bad)
