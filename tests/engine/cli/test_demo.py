"""The demo end to end, through the real CLI: five promotions (one on an imported lm-eval
result), a ledger and five packets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
from pypdf import PdfReader


def _demo(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "demo", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def test_demo_runs_the_main_path(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = _demo(out)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    outcomes = {p["name"]: (p["outcome"], p["exit_code"]) for p in summary["promotions"]}
    assert outcomes == {
        "01-weekly-retrain": ("approve", 0),
        "02-regressed-candidate": ("deny", 1),
        "03-tampered-evidence": ("deny", 4),
        "04-serving-change": ("review", 3),
        "05-imported-lm-eval": ("approve", 0),
    }
    assert "gate.stress.accuracy" in r.stdout and "signature" in r.stdout
    commits = list(git.Repo(out / "ledger").iter_commits())
    weeks = summary["operations"]
    # creation + one per decision + the deployment attestation + one per week in service
    assert len(commits) == 7 + len(weeks)
    # 05's eval is the lm-eval results file imported through imports.yaml, with its baseline
    lm_eval = json.loads((out / "lm-eval" / "candidate.json").read_text())
    assert lm_eval["n-samples"]["support_triage_stress"]["effective"] > 0
    assert (out / "policy-repo" / "imports.yaml").is_file()
    deployments = {d["region"]: d for d in summary["deployments"]}
    assert deployments["eu-west"]["verified"] is True
    verify = subprocess.run([sys.executable, "-m", "slmgate.engine.cli", "ledger", "verify", "--ledger",
                             str(out / "ledger"), "--trust", str(out / "policy-repo" / "trust.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (deployments["eu-central"]["verified"], deployments["eu-central"]["check"]) == (False, "digest")
    assert "DRIFTED" in r.stdout and "VERIFIED" in r.stdout
    # weeks in service: the baseline before the promotion, the approved candidate from its week on
    assert len(weeks) == 6 and len({w["week"] for w in weeks}) == 6
    approved = deployments["eu-west"]["weights_digest"]
    assert [w["weights_digest"] == approved for w in weeks] == [False] * 5 + [True]
    assert all(0 < w["automated_share"] <= 1 and w["latency_p95_ms"] > 0 for w in weeks)
    assert (out / "ops" / "metrics.csv").read_text().startswith("week,model,model_digest")
    report = PdfReader(summary["reports"]["pdf"])
    first = report.pages[0].extract_text()
    assert "Cost per successful task" in first and "Risk note" in first
    assert "Denied" in first and "Pending review" in first  # the risk note, from the records
    assert "program-report.json" in report.attachments
    html = Path(summary["reports"]["html"]).read_text()
    assert "<svg" in html and "Adoption: share fully automated" in html
    for p in summary["promotions"]:
        reader = PdfReader(p["packet"])
        text = "".join(page.extract_text() for page in reader.pages)
        assert p["outcome"].upper() in text.upper()
        assert "request.json" in reader.attachments
        assert "evidence/eval-result.dsse.json" in reader.attachments
        assert "evidence/training-run.dsse.json" in reader.attachments
        assert "evidence/data-card-tickets_scrubbed.dsse.json" in reader.attachments
    # the retrains carry signed provenance: a training-run and one data card per dataset read
    decided = {p["name"]: p for p in summary["promotions"]}
    assert "purpose.dataset" not in decided["01-weekly-retrain"]["summary"]
    assert (out / "datasets" / "typo_augmented_tickets" / "train.jsonl").stat().st_size > 1000
    # models are real safetensors trained here; the request re-hashes them at promotion time
    assert (out / "models" / "candidate" / "model.safetensors").stat().st_size > 1000
    assert not list(tmp_path.glob(".demo.*")), "work folders must not be left behind"


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    r = _demo(out)
    assert r.returncode == 2
    assert "not written by `slmgate demo`" in r.stderr
    assert (out / "thesis.tex").read_text() == "do not delete"
