"""`slmgate report program` through the real CLI: the three trajectories from recorded
ops-metrics weeks against the charter, the risk note from the records, the council's page;
PDF, JSON, and HTML looked at in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from slmgate.engine.ledger._store import Ledger
from tests.conftest import NOW
from tests.engine.deploy.test_deploy import _attest
from tests.engine.ledger.test_ledger import LedgerKit, ledger_kit, slmgate  # noqa: F401  (fixture)
from tests.engine.ops.test_ops import AT, ops_import, week_row, write_csv

REPORT_AT = "2026-11-27T12:00:00Z"


@pytest.fixture(scope="module")
def program(ledger_kit: LedgerKit, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:  # noqa: F811
    """The kit's three decisions, four recorded weeks, and policies whose waiver and one key
    expire within 30 days of the report."""
    root = tmp_path_factory.mktemp("program")
    world = ledger_kit.world
    policies = root / "policies"
    shutil.copytree(world.policies, policies)
    (policies / "waivers.yaml").write_text(yaml.safe_dump({"waivers": [{
        "id": "w-stress", "rule_id": "gate.stress.accuracy.max_drop",
        "scope": {"model": "support-triage"}, "owner": "ml-lead", "ticket": "CAB-42",
        "reason": "noisy stress set", "expires": "2026-12-10"}]}))
    trust = yaml.safe_load((policies / "trust.yaml").read_text())
    trust["identities"]["ml-lead"]["valid_until"] = "2026-12-01T00:00:00Z"
    (policies / "trust.yaml").write_text(yaml.safe_dump(trust, sort_keys=False))
    subs = yaml.safe_load((policies / "subprocessors.yaml").read_text())
    subs["subprocessors"]["us-helpdesk"] = {
        "name": "Example Helpdesk Inc.", "service": "Ticket inbox", "data_classes": ["contact_details"],
        "regions": ["us"], "assurances": ["dpa-signed"], "transfer_safeguard": "SCCs (2021/914)"}
    (policies / "subprocessors.yaml").write_text(yaml.safe_dump(subs, sort_keys=False))
    rows = [week_row(world, "2026-W44", automated=200, successful=200, defects=60, escalated=120),
            week_row(world, "2026-W45", automated=220, successful=220, defects=50, escalated=110),
            week_row(world, "2026-W46", automated=250, successful=250, defects=40, escalated=100),
            week_row(world, "2026-W47", automated=280, successful=280, defects=20, escalated=90)]
    assert ops_import(world, write_csv(root / "m.csv", rows), root / "weeks").returncode == 0
    ledger = ledger_kit.copy(root / "ledger")
    for envelope in sorted((root / "weeks").iterdir()):
        assert slmgate("ledger", "record", envelope, "--ledger", ledger, "--policies", policies,
                       "--signing-key", world.secrets / "slmgate-gate.key").returncode == 0
    # eu-central still serves other weights than eu-west: a drifted region
    _attest(ledger_kit, ledger, "eu-west", world.candidate_sha)
    _attest(ledger_kit, ledger, "eu-central", world.baseline_sha)
    return ledger, policies


def report(ledger: Path, policies: Path, fmt: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return slmgate("report", "program", "--ledger", ledger, "--policies", policies,
                   "--format", fmt, "-o", out, "--at", REPORT_AT, "--since", "2026-10-01", *extra)


def test_the_json_report_holds_the_trajectories_the_risk_note_and_the_council_page(
        program: tuple[Path, Path], tmp_path: Path) -> None:
    ledger, policies = program
    run = report(ledger, policies, "json", tmp_path / "r.json")
    assert run.returncode == 0, run.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    cost = doc["trajectories"]["cost"]
    assert [p["week"] for p in cost["series"]] == ["2026-W44", "2026-W45", "2026-W46", "2026-W47"]
    assert cost["this_week"] == {"week": "2026-W47", "value": 0.072}  # 20.16 EUR / 280
    assert (cost["metric"], cost["baseline"], cost["target"]) == ("cost_per_ticket", 0.42, 0.05)
    assert cost["trend"] == "improving" and cost["change"] < 0
    adoption = doc["trajectories"]["adoption"]
    assert adoption["this_week"]["value"] == 0.7 and adoption["trend"] == "improving"
    defects = doc["trajectories"]["defects"]
    assert defects["this_week"]["value"] == 0.05 and defects["metric"] == "misroute_rate"
    assert [p["value"] for p in defects["escalation_share"]] == [0.3, 0.275, 0.25, 0.225]
    risks = doc["risk_note"]
    assert [w["waiver"] for w in risks["waivers_expiring"]] == ["w-stress"]
    assert risks["waivers_expiring"][0]["days_left"] == 13
    assert [k["identity"] for k in risks["keys_expiring"]] == ["ml-lead"]
    assert [p["request"] for p in risks["pending_reviews"]] == ["req-review"]
    assert risks["pending_reviews"][0]["needs"] == "1× release-manager"
    [denied] = risks["denied"]
    assert denied["request"] == "req-deny" and "gate.stress.accuracy" in denied["root_cause"]
    assert [r["region"] for r in risks["regions_drifted"]] == ["eu-central", "eu-west"]
    assert all(any(f.startswith("drift:") for f in r["flags"]) for r in risks["regions_drifted"])
    assert risks["subprocessors_under_safeguards"] == [{
        "subprocessor": "us-helpdesk", "name": "Example Helpdesk Inc.",
        "data_classes": ["contact_details"], "regions": ["us"], "safeguard": "SCCs (2021/914)"}]
    assert risks["refused_records"] == []
    council = doc["council"]
    assert council["decisions"] == 3
    latency = {row["tier"]: row for row in council["decision_latency"]}
    assert latency["automated"]["decided"] == 2 and latency["automated"]["median_hours"] == 0
    assert latency["human_signoff"]["pending"] == 1
    assert council["exit_codes"] == [{"week": "2026-W47", "counts": {"0": 1, "1": 1, "3": 1, "4": 0}}]


def test_since_narrows_the_period(program: tuple[Path, Path], tmp_path: Path) -> None:
    ledger, policies = program
    run = slmgate("report", "program", "--ledger", ledger, "--policies", policies, "--format", "json",
                  "-o", tmp_path / "r.json", "--at", REPORT_AT, "--since", "2026-11-10")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert run.returncode == 0
    assert [p["week"] for p in doc["trajectories"]["adoption"]["series"]] == ["2026-W46", "2026-W47"]


def test_the_pdf_report_is_pdfa_with_its_json_attached(program: tuple[Path, Path], tmp_path: Path) -> None:
    import pypdf

    ledger, policies = program
    run = report(ledger, policies, "pdf", tmp_path / "r.pdf")
    assert run.returncode == 0, run.stderr
    pdf = pypdf.PdfReader(tmp_path / "r.pdf")
    assert len(pdf.pages) >= 2
    first = pdf.pages[0].extract_text()
    for text in ("Cost per successful task", "Defects and escalations", "Risk note", "w-stress",
                 "Pending review", "Region eu-central", "SCCs (2021/914)"):
        assert text in first, text
    assert "Decision latency" in pdf.pages[1].extract_text()
    assert "program-report.json" in pdf.attachments
    import pikepdf

    with pikepdf.open(tmp_path / "r.pdf") as doc:  # PDF/A-3b, as the packets
        meta = doc.open_metadata()
        assert (meta["pdfaid:part"], meta["pdfaid:conformance"]) == ("3", "B")


def test_an_empty_ledger_reports_that_nothing_is_recorded(ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    Ledger(tmp_path / "empty")
    for fmt in ("json", "html"):
        run = report(tmp_path / "empty", ledger_kit.world.policies, fmt, tmp_path / f"r.{fmt}")
        assert run.returncode == 0, run.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["weeks"] == [] and doc["council"]["decisions"] == 0
    assert all(t["this_week"] is None and t["trend"] == "no data" for t in doc["trajectories"].values())
    html = (tmp_path / "r.html").read_text()
    assert "No operations metrics are recorded" in html and "no weeks recorded" in html


def test_bad_input_is_exit_2_and_nothing_is_written(ledger_kit: LedgerKit, tmp_path: Path) -> None:  # noqa: F811
    policies = ledger_kit.world.policies
    run = report(tmp_path / "nowhere", policies, "json", tmp_path / "r.json")
    assert run.returncode == 2 and "no such ledger" in run.stderr
    run = report(ledger_kit.ledger, policies, "json", tmp_path / "r.json", "--since", "last week")
    assert run.returncode == 2 and "--since" in run.stderr
    run = report(ledger_kit.ledger, policies, "docx", tmp_path / "r.docx")
    assert run.returncode == 2
    assert not list(tmp_path.iterdir())


def test_a_record_that_does_not_verify_is_named_in_the_risk_note_not_counted(
        program: tuple[Path, Path], tmp_path: Path, ledger_kit: LedgerKit) -> None:  # noqa: F811
    from slmgate.engine.ledger._attestation import PendingAttestation

    ledger, policies = program
    ledger = Path(shutil.copytree(ledger, tmp_path / "ledger", symlinks=True))
    world = ledger_kit.world
    rows = [week_row(world, "2026-W48", automated=10, successful=10)]
    write_csv(tmp_path / "m.csv", rows)
    out = slmgate("ops", "import", tmp_path / "m.csv", "--policies", policies, "--sign",
                  world.secrets / "runtime.key", "-o", tmp_path / "w.dsse.json",
                  "--at", "2026-11-27T10:00:00Z")
    assert out.returncode == 0, out.stderr
    Ledger(ledger, signing_key=world.key("slmgate-gate")).record_pending(
        PendingAttestation("ops-metrics", (tmp_path / "w.dsse.json").read_bytes(), "ops: forged"))
    run = report(ledger, policies, "json", tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert run.returncode == 0
    assert doc["trajectories"]["adoption"]["this_week"]["week"] == "2026-W47"  # W48 left out
    [refused] = doc["risk_note"]["refused_records"]
    assert refused["kind"] == "ops-metrics" and "allows to sign ops-metrics" in refused["reason"]


# --- the HTML in a real browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium for the headless-browser check: "
                             "`apt-get install -y chromium` (Debian)")


def _chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-dev-shm-usage", *args],
                          capture_output=True, timeout=120, check=False)


@needs_chromium
def test_the_html_report_renders_in_a_headless_browser(program: tuple[Path, Path], tmp_path: Path) -> None:
    from PIL import Image

    ledger, policies = program
    run = report(ledger, policies, "html", tmp_path / "r.html")
    assert run.returncode == 0, run.stderr
    html = (tmp_path / "r.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "src=" not in html and "<link" not in html  # self-contained: nothing to fetch
    url = (tmp_path / "r.html").as_uri()
    shot = tmp_path / "r.png"
    run_shot = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", "--hide-scrollbars", url)
    assert shot.is_file(), run_shot.stderr.decode(errors="replace")[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    low, high = image.getextrema()
    assert high - low > 100  # not a blank page: dark text and charts on white
    histogram = image.histogram()
    assert sum(histogram[:128]) > 0.002 * image.size[0] * image.size[1]  # ink covers some of it
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    text = dom.stdout.decode()
    for needle in ("Cost per successful task", "Adoption: share fully automated", "Risk note",
                   "w-stress", "Decision latency", "<svg"):
        assert needle in text, needle


def test_the_report_time_defaults_to_now(program: tuple[Path, Path], tmp_path: Path) -> None:
    ledger, policies = program
    run = slmgate("report", "program", "--ledger", ledger, "--policies", policies, "--format", "json",
                  "-o", tmp_path / "r.json", "--since", (NOW - timedelta(days=60)).date().isoformat())
    assert run.returncode == 0
    assert json.loads((tmp_path / "r.json").read_text())["generated_at"] > AT
