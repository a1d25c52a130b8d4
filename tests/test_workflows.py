"""Every GitHub workflow validates offline: vendored schema, zizmor, pinned actions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
BIN = Path(sys.executable).parent
BLOCKING = {"Medium", "High"}
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def zizmor_findings(*paths: Path) -> list[dict[str, Any]]:
    """zizmor's findings (JSON) for `paths`, offline: no GitHub API calls."""
    done = subprocess.run(
        [BIN / "zizmor", "--offline", "--format", "json", *map(str, paths)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def blocking(findings: list[dict[str, Any]]) -> list[str]:
    """Findings of medium severity or above, as 'audit: description' lines."""
    return [
        f"{f['ident']}: {f['desc']}"
        for f in findings
        if f["determinations"]["severity"] in BLOCKING
    ]


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_there_are_workflows() -> None:
    assert {"ci.yml", "train.yml", "deploy.yml"} <= {p.name for p in WORKFLOWS}


def test_workflows_match_the_vendored_github_schema() -> None:
    done = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows",
         *map(str, WORKFLOWS)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_of_medium_severity_or_above() -> None:
    assert blocking(zizmor_findings(*WORKFLOWS)) == []


def test_zizmor_check_catches_an_unsafe_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\non: pull_request\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    found = {line.split(":")[0] for line in blocking(zizmor_findings(bad))}
    assert {"unpinned-uses", "template-injection", "artipacked"} <= found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_with_least_permissions(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["permissions"] == {}, "no default token permissions"
    for job in workflow["jobs"].values():
        assert "write-all" not in str(job.get("permissions", {}))
    text = path.read_text()
    for step in steps(workflow):
        if "uses" in step:
            assert PINNED.match(step["uses"]), step["uses"]
            assert re.search(re.escape(step["uses"]) + r" # v\d", text), "version note"
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_train_runs_weekly_and_on_demand_with_oidc_only() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/train.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert [s["cron"] for s in triggers["schedule"]] == ["0 3 * * 1"]
    assert "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    (login,) = [s for s in steps(workflow) if s.get("uses", "").startswith("azure/")]
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    assert "secrets." not in (ROOT / ".github/workflows/train.yml").read_text()
    commands = " ".join(s.get("run", "") for s in steps(workflow))
    assert "kedro azureml --env azure run" in commands
    assert "--wait-for-completion" in commands
    assert "docker push" in commands
    # Only the promotion gate publishes a champion; nothing else is "latest".
    assert "releases/latest" not in (ROOT / ".github/workflows/train.yml").read_text()
    assert "promotion_report.json" in commands
    # The steps reach the feedback store with the cluster's identity: the URL is a
    # variable (no password), refused before the job starts if it holds one.
    assert job["env"]["FEEDBACK_DATABASE_URL"] == "${{ vars.FEEDBACK_DATABASE_URL }}"
    assert '--env-var "DATABASE_URL=${FEEDBACK_DATABASE_URL}"' in commands
    assert any(
        s.get("uses", "").startswith("actions/upload-artifact@")
        for s in steps(workflow)
    )


def test_deploy_pins_the_proxy_image_the_manifests_name() -> None:
    """deploy.yml pins by digest the same nginx tag as k8s/base/kustomization.yaml."""
    kustomization = yaml.safe_load((ROOT / "k8s/base/kustomization.yaml").read_text())
    (proxy,) = [i for i in kustomization["images"] if i["name"] == "nginx-unprivileged"]
    deploy = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    steps = [s for job in deploy["jobs"].values() for s in job["steps"]]
    images = [
        s["env"]["PROXY_IMAGE"] for s in steps if "PROXY_IMAGE" in s.get("env", {})
    ]
    assert images == [f"{proxy['newName']}:{proxy['newTag']}"]


def test_ci_runs_in_bookworm_and_images_ship_from_the_make_targets() -> None:
    def load(name: str) -> dict[str, Any]:
        return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())

    def commands(workflow: dict[str, Any]) -> str:
        return " ".join(s.get("run", "") for s in steps(workflow))

    ci, deploy, train = load("ci.yml"), load("deploy.yml"), load("train.yml")
    (job,) = ci["jobs"].values()
    assert job["container"]["image"] == "debian:bookworm"  # /usr/bin/chromium, apt
    assert "--privileged" in job["container"]["options"]  # dockerd in the job
    assert ".ci/run" in commands(ci)
    assert "make image IMAGE_REPO=" in commands(deploy)
    assert "make image-training TRAINING_REPO=" in commands(train)
    assert "docker build" not in commands(deploy) + commands(train)
