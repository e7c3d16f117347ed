"""The CI definitions users copy into their GitOps repo (``sslm_ci/ci_templates``).

GitHub workflows: zizmor, check-jsonschema and actionlint, each also shown to reject a broken
copy. GitLab pipeline: check-jsonschema, then executed by gitlab-ci-local (shell executor)
against a repo made by ``sslm-ci init`` that pushes to a bare remote, with a real age identity
and SSH signing key made here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import sslm_ci
from sslm_ci.gitops.agekeys import generate_age_identity, write_identity_file

PROJECT = Path(__file__).resolve().parent.parent
TEMPLATES = PROJECT / "sslm_ci" / "ci_templates"
GITHUB_SCHEDULED = TEMPLATES / "github" / "sslm-ci.yml"
GITHUB_PLAN = TEMPLATES / "github" / "sslm-ci-plan.yml"
GITHUB_WORKFLOWS = (GITHUB_SCHEDULED, GITHUB_PLAN)
GITLAB = TEMPLATES / "gitlab-ci.yml"
VENV_BIN = Path(sys.executable).parent
GITLAB_CI_LOCAL = PROJECT / ".ci-tools" / "node_modules" / ".bin" / "gitlab-ci-local"

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PUSH_TOKEN = "glpat-sslm-ci-test-token"
# gitlab-ci-local derives CI_SERVER_FQDN and CI_PROJECT_PATH from this origin URL.
GITLAB_ORIGIN = "https://gitlab.example.test/certs/gitops.git"
TOKEN_URL = f"https://oauth2:{PUSH_TOKEN}@gitlab.example.test/certs/gitops.git"
PIPELINE_TIMEOUT = 120


def tool(name: str) -> Path:
    path = VENV_BIN / name
    assert path.exists(), f"{name} missing from {VENV_BIN}: pip install -e '.[dev]'"
    return path


def run(
    args: list[str | Path],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT,
        check=False,
    )


def offline_env() -> dict[str, str]:
    # zizmor goes online (and fails here) when it finds a GitHub token.
    return {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN")}


# ---------------------------------------------------------------------------------------------
# Linters
# ---------------------------------------------------------------------------------------------


def zizmor(*files: Path) -> subprocess.CompletedProcess[str]:
    # The auditor persona adds the pedantic audits (secrets outside an environment, ...).
    return run(
        [tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", *files],
        env=offline_env(),
    )


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("actionlint"), "-no-color", *files])


def github_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files])


def gitlab_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", *files])


LINTERS: dict[str, Callable[..., subprocess.CompletedProcess[str]]] = {
    "zizmor": zizmor,
    "actionlint": actionlint,
    "check-jsonschema": github_schema,
}


@pytest.mark.parametrize("linter", sorted(LINTERS))
def test_github_workflows_are_clean(linter: str) -> None:
    result = LINTERS[linter](*GITHUB_WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


# Each mutant breaks one thing its linter is known to catch: proof the linter really looked.
GITHUB_MUTANTS = [
    pytest.param(
        "zizmor",
        "actions/checkout@11d5960a326750d5838078e36cf38b85af677262",
        "actions/checkout@v4",
        "unpinned-uses",
        id="zizmor-unpinned-action",
    ),
    pytest.param(
        "zizmor",
        'sslm-ci "$STAGE" -f',
        "sslm-ci ${{ inputs.stage }} -f",
        "template-injection",
        id="zizmor-input-in-run",
    ),
    pytest.param(
        "zizmor",
        "\npermissions: {}\n",
        "\npermissions: write-all\n",
        "excessive-permissions",
        id="zizmor-write-all",
    ),
    pytest.param("actionlint", '"17 3 * * *"', '"77 3 * * *"', "cron", id="actionlint-cron"),
    # actionlint hands run: scripts to shellcheck when it is on PATH (install-ci-tools.sh).
    pytest.param(
        "actionlint", 'sslm-ci "$STAGE" -f', "sslm-ci $STAGE -f", "SC2086", id="shellcheck"
    ),
    pytest.param(
        "check-jsonschema", "    runs-on:", "    run-on:", "run-on", id="schema-unknown-key"
    ),
]


@pytest.mark.parametrize(("linter", "old", "new", "expected"), GITHUB_MUTANTS)
def test_github_linters_reject_a_broken_workflow(
    linter: str, old: str, new: str, expected: str, tmp_path: Path
) -> None:
    text = GITHUB_SCHEDULED.read_text()
    assert old in text, f"mutant no longer applies: {old!r}"
    broken = tmp_path / "sslm-ci.yml"
    broken.write_text(text.replace(old, new, 1))
    result = LINTERS[linter](broken)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_gitlab_pipeline_matches_the_gitlab_ci_schema(tmp_path: Path) -> None:
    result = gitlab_schema(GITLAB)
    assert result.returncode == 0, result.stdout + result.stderr
    text = GITLAB.read_text()
    old = "  artifacts:\n    expose_as:"
    assert old in text, "mutant no longer applies"
    broken = tmp_path / "gitlab-ci.yml"
    broken.write_text(text.replace(old, "  artifact:\n    expose_as:", 1))
    result = gitlab_schema(broken)
    assert result.returncode != 0
    assert "artifact" in result.stdout


def test_templates_install_this_release_of_sslm_ci() -> None:
    pinned = f"sslm-ci=={sslm_ci.__version__}"
    for template in (*GITHUB_WORKFLOWS, GITLAB):
        specs = re.findall(r"sslm-ci==[\w.]+", template.read_text())
        assert specs and set(specs) == {pinned}, (template.name, specs)


# ---------------------------------------------------------------------------------------------
# GitLab pipeline under gitlab-ci-local
# ---------------------------------------------------------------------------------------------


@dataclass
class GitOps:
    """A GitOps repo as ``sslm-ci init`` makes it, its bare remote, the CI's secrets."""

    base: Path
    repo: Path
    remote: Path
    keys: Path
    signing_key: Path
    allowed_signers: Path
    env: dict[str, str]

    def git(self, *args: str, cwd: Path | None = None) -> str:
        result = run(["git", *args], cwd=cwd or self.repo, env=self.env)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def sslm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([VENV_BIN / "sslm-ci", *args], cwd=self.repo, env=self.env)

    def pipeline(
        self, *variables: str, secrets: bool = True, unset: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run the GitLab pipeline on the work tree, as gitlab-ci-local's shell executor does."""
        gitlab_ci_local_ready()
        args: list[str | Path] = [
            GITLAB_CI_LOCAL,
            "--force-shell-executor",
            "--shell-isolation",
            "--no-color",
            "--home",
            self.base / "gcl-home",
            "--ignore-predefined-vars",
            "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH,CI_MERGE_REQUEST_DIFF_BASE_SHA",
        ]
        if secrets:
            # Secrets stay off the command line: gitlab-ci-local reads them like CI/CD
            # variables; an existing path becomes a File-type variable, as SSLM_SIGNING_KEY is.
            args += ["--variables-file", os.path.relpath(self.keys / "ci-variables.yml", self.repo)]
        for name in unset:
            args += ["--unset-variable", name]
        for variable in variables:
            args += ["--variable", variable]
        return run(args, cwd=self.repo, env=self.env)

    def act(
        self,
        workflow: Path,
        event: str,
        payload: dict[str, object],
        *,
        branch: str = "main",
        now: datetime = T0,
        secrets: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a GitHub workflow's steps on this machine (act's host mode)."""
        event_file = self.base / f"{event}.json"
        event_file.write_text(json.dumps(payload))
        args: list[str | Path] = [
            tool("act"),
            event,
            "--workflows",
            for_act(workflow, self.base / "act-workflow.yml"),
            "--platform",
            "ubuntu-24.04=-self-hosted",
            "--eventpath",
            event_file,
            "--env",
            f"SSLM_TEST_REMOTE={self.remote}",
            "--env",
            f"SSLM_TEST_BRANCH={branch}",
            "--env",
            f"SSLM_CI_NOW={now.isoformat()}",
        ]
        if secrets:
            args += ["--secret-file", self.keys / "github-secrets.env"]
        # act keeps its work directories under $HOME/.cache/act.
        return run(args, cwd=self.repo, env=dict(self.env, HOME=str(self.base / "act-home")))

    def remote_tags(self) -> list[str]:
        return self.git("tag", "--list", cwd=self.remote).split()

    def verify_tag(self, tag: str) -> subprocess.CompletedProcess[str]:
        return run(
            [
                "git",
                "-c",
                f"gpg.ssh.allowedSignersFile={self.allowed_signers}",
                "verify-tag",
                tag,
            ],
            cwd=self.remote,
            env=self.env,
        )

    def runner_checkout(self, branch: str = "main") -> None:
        """What a GitLab runner starts from: the remote branch's commit, detached."""
        self.git("fetch", "-q", str(self.remote), branch)
        self.git("checkout", "-q", "-B", branch, "FETCH_HEAD")
        self.git("checkout", "-q", "--detach")


def gitlab_ci_local_ready() -> None:
    assert GITLAB_CI_LOCAL.exists(), (
        f"{GITLAB_CI_LOCAL} missing: run scripts/install-ci-tools.sh (make test does)"
    )
    assert shutil.which("rsync"), "gitlab-ci-local needs rsync: run scripts/install-ci-tools.sh"


def isolated_env(base: Path, gitconfig: str = "") -> dict[str, str]:
    """The developer's git config, CI variables and keys stay out; this venv comes first."""
    config = base / "gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.test\n" + gitconfig)
    job_tmp = base / "job-tmp"
    job_tmp.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOPS_", "SSLM_", "GCL_", "GIT_", "CI_", "GITLAB_", "GITHUB_"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_GLOBAL=str(config),
        GIT_CONFIG_NOSYSTEM="1",
        TMPDIR=str(job_tmp),
    )
    return env


@pytest.fixture
def gitlab_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A repo holding just the pipeline: enough for gitlab-ci-local to list and expand it."""
    gitlab_ci_local_ready()
    env = isolated_env(tmp_path)
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(GITLAB, repo / ".gitlab-ci.yml")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "ci"]):
        assert run(["git", *args], cwd=repo, env=env).returncode == 0
    return repo, env


def gitlab_ci_local_query(
    gitlab_repo: tuple[Path, dict[str, str]], *args: str
) -> subprocess.CompletedProcess[str]:
    repo, env = gitlab_repo
    result = run(
        [
            GITLAB_CI_LOCAL,
            "--home",
            repo.parent / "gcl-home",
            "--ignore-predefined-vars",
            "CI_PIPELINE_SOURCE",
            *args,
        ],
        cwd=repo,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def gitops(tmp_path: Path) -> GitOps:
    keys = tmp_path / "keys"  # outside the repo: nothing secret is ever inside it
    keys.mkdir()
    secret, public = generate_age_identity()
    write_identity_file(keys / "ci.agekey", secret, public)
    signing_key = keys / "signing_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(signing_key)],
        check=True,
    )
    kind, blob = (keys / "signing_ed25519.pub").read_text().split()[:2]
    allowed_signers = keys / "allowed_signers"
    allowed_signers.write_text(f'ci@sslm-ci namespaces="git" {kind} {blob}\n')
    (keys / "ci-variables.yml").write_text(
        json.dumps({"SOPS_AGE_KEY": secret, "SSLM_SIGNING_KEY": str(signing_key)})
    )
    # GitHub secrets hold contents; act reads them from a dotenv file (\n escapes, quoted).
    escaped_key = signing_key.read_text().strip().replace("\n", "\\n")
    (keys / "github-secrets.env").write_text(
        f'SSLM_AGE_KEY={secret}\nSSLM_SIGNING_KEY="{escaped_key}"\n'
    )

    remote = tmp_path / "remote.git"
    # The token URL the pipeline builds leads to the bare remote, and only that URL does.
    env = isolated_env(tmp_path, f'[url "{remote}"]\n\tinsteadOf = {TOKEN_URL}\n')
    repo = tmp_path / "repo"
    world = GitOps(tmp_path, repo, remote, keys, signing_key, allowed_signers, env)
    world.git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
    init = run(
        [
            VENV_BIN / "sslm-ci",
            "--now",
            T0.isoformat(),
            "init",
            repo,
            "--from",
            PROJECT / "inventory",
            "--age-recipient",
            public,
        ],
        env=env,
    )
    assert init.returncode == 0, init.stderr
    installed = run([VENV_BIN / "sslm-ci", "--repo", repo, "ci-templates"], env=env)
    assert installed.returncode == 0, installed.stderr
    assert (repo / ".gitlab-ci.yml").read_bytes() == GITLAB.read_bytes()
    for workflow in GITHUB_WORKFLOWS:
        dest = repo / ".github" / "workflows" / workflow.name
        assert dest.read_bytes() == workflow.read_bytes()
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".gitlab-ci-local/\nsslm-*.md\n")
    world.git("add", ".gitlab-ci.yml", ".github")
    world.git("commit", "-q", "-m", "ci: sslm-ci pipeline")
    world.git("remote", "add", "origin", GITLAB_ORIGIN)
    world.git("push", "-q", str(remote), "main")
    return world


def jobs_in(output: str) -> dict[str, str]:
    return dict(
        (name, verdict)
        for verdict, name in re.findall(r"^ (PASS|FAIL|WARN)\s+(\S+)\s*$", output, re.MULTILINE)
        if verdict != "WARN"
    )


def test_scheduled_renew_then_roll_land_signed_tags(gitops: GitOps) -> None:
    # renew pushes through the project-access-token URL (SSLM_PUSH_TOKEN); git's insteadOf
    # maps exactly that URL to the bare remote, so the push lands only if the job built it.
    gitops.runner_checkout()
    renew = gitops.pipeline(
        "CI_PIPELINE_SOURCE=schedule",
        "CI_COMMIT_BRANCH=main",
        "SSLM_STAGE=renew",
        f"SSLM_PUSH_TOKEN={PUSH_TOKEN}",
        f"SSLM_CI_NOW={T0.isoformat()}",
    )
    log = renew.stdout + renew.stderr
    assert renew.returncode == 0, log
    assert jobs_in(log) == {"validate": "PASS", "renew": "PASS"}
    assert "example.net:web-ec: renewed into next (no-current-cert)" in log
    assert PUSH_TOKEN not in log
    assert gitops.remote_tags() == ["sslm/renew/20261203T120000Z"]
    assert gitops.verify_tag("sslm/renew/20261203T120000Z").returncode == 0
    head = gitops.git("log", "-1", "--format=%B", "main", cwd=gitops.remote)
    assert "Sslm-Stage: renew" in head
    summary = (gitops.repo / "sslm-summary.md").read_text()
    assert "### This run: renew" in summary
    assert "example.net:web-ec" in summary
    # The signing key's private copy is gone with the job.
    assert list(Path(gitops.env["TMPDIR"]).glob("tmp.*")) == []

    # Roll, three hours later (min_roll_mins is 90), pushing to a remote named by
    # SSLM_CI_REMOTE with no token. The DANE service is held: no [[dns_primary]].
    gitops.git("remote", "set-url", "origin", str(gitops.remote))
    gitops.runner_checkout()
    roll = gitops.pipeline(
        "CI_PIPELINE_SOURCE=schedule",
        "CI_COMMIT_BRANCH=main",
        "SSLM_STAGE=roll",
        "SSLM_CI_REMOTE=origin",
        f"SSLM_CI_NOW={(T0 + timedelta(hours=3)).isoformat()}",
    )
    log = roll.stdout + roll.stderr
    assert roll.returncode == 0, log
    assert jobs_in(log) == {"validate": "PASS", "roll": "PASS"}
    assert "example.net:web-ec: rolled next -> curr" in log
    assert "example.com:mail-ec: held (no-dns-primary" in log
    assert gitops.remote_tags() == ["sslm/renew/20261203T120000Z", "sslm/roll/20261203T150000Z"]
    assert gitops.verify_tag("sslm/roll/20261203T150000Z").returncode == 0


def test_stage_without_secrets_fails_before_touching_anything(gitops: GitOps) -> None:
    gitops.runner_checkout()
    result = gitops.pipeline(
        "CI_PIPELINE_SOURCE=schedule",
        "CI_COMMIT_BRANCH=main",
        "SSLM_STAGE=renew",
        "SSLM_CI_REMOTE=origin",
        f"SSLM_CI_NOW={T0.isoformat()}",
        secrets=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert jobs_in(log) == {"validate": "PASS", "renew": "FAIL"}
    assert "the SOPS_AGE_KEY variable is not set" in log
    assert gitops.remote_tags() == []


def test_schedule_with_an_unknown_stage_fails(gitops: GitOps) -> None:
    gitops.runner_checkout()
    result = gitops.pipeline("CI_PIPELINE_SOURCE=schedule", "SSLM_STAGE=renwe")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert jobs_in(log) == {"validate": "FAIL"}
    assert "SSLM_STAGE must be status, renew or roll, not 'renwe'" in log


def merge_request(gitops: GitOps, branch: str) -> subprocess.CompletedProcess[str]:
    base = gitops.git("rev-parse", "main").strip()
    gitops.git("add", "-A", "inventory")
    gitops.git("commit", "-q", "-m", f"inventory: {branch}")
    gitops.git("checkout", "-q", "--detach")  # merge request pipelines run detached too
    return gitops.pipeline(
        "CI_PIPELINE_SOURCE=merge_request_event",
        f"CI_MERGE_REQUEST_DIFF_BASE_SHA={base}",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main",
        f"CI_MERGE_REQUEST_SOURCE_BRANCH_NAME={branch}",
        secrets=False,  # merge request pipelines get no protected variables
        unset=("CI_COMMIT_BRANCH",),  # as on GitLab: MR pipelines have no branch
    )


def test_merge_request_pipeline_plans_a_new_service(gitops: GitOps) -> None:
    gitops.git("checkout", "-q", "-b", "add-mail")
    added = gitops.sslm(
        "add-service", "example.net", "mail-ec", "--ca", "my-int", "--san", "mail.example.net"
    )
    assert added.returncode == 0, added.stderr
    result = merge_request(gitops, "add-mail")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert jobs_in(log) == {"validate": "PASS", "plan": "PASS"}
    assert "example.net:mail-ec: new" in log
    plan = (gitops.repo / "sslm-plan.md").read_text()
    assert "| `example.net:mail-ec` | new |" in plan
    assert gitops.remote_tags() == []


def test_merge_request_pipeline_fails_on_an_invalid_service(gitops: GitOps) -> None:
    gitops.git("checkout", "-q", "-b", "bad-mail")
    added = gitops.sslm(
        "add-service", "example.net", "mail-ec", "--ca", "my-int", "--san", "mail.example.net"
    )
    assert added.returncode == 0, added.stderr
    service = gitops.repo / "inventory" / "example.net" / "mail-ec"
    text, count = re.subn(
        r"^signing_ca = .*$", 'signing_ca = "no-such-ca"', service.read_text(), flags=re.M
    )
    assert count == 1
    service.write_text(text)
    result = merge_request(gitops, "bad-mail")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert jobs_in(log) == {"validate": "FAIL", "plan": "FAIL"}
    assert "inventory/example.net/mail-ec" in log
    assert "no-such-ca" in log


@pytest.mark.parametrize(
    ("source", "stage", "jobs"),
    [
        ("schedule", "renew", {"validate", "renew"}),
        ("schedule", "roll", {"validate", "roll"}),
        ("web", "status", {"validate", "status"}),
        ("web", "roll", {"validate", "roll"}),
        ("merge_request_event", "renew", {"validate", "plan"}),
        ("push", "renew", {"validate"}),
    ],
)
def test_pipeline_sources_select_jobs(
    source: str, stage: str, jobs: set[str], gitlab_repo: tuple[Path, dict[str, str]]
) -> None:
    result = gitlab_ci_local_query(
        gitlab_repo,
        "--list-json",
        "--variable",
        f"CI_PIPELINE_SOURCE={source}",
        "--variable",
        f"SSLM_STAGE={stage}",
    )
    start = re.search(r"^\[", result.stdout, re.MULTILINE)
    assert start is not None, result.stdout
    listed = json.loads(result.stdout[start.start() :])
    assert {job["name"] for job in listed if job["when"] != "never"} == jobs


def expanded_pipeline(gitlab_repo: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    """The pipeline with defaults, anchors and extends applied, as gitlab-ci-local sees it."""
    preview = gitlab_ci_local_query(gitlab_repo, "--preview")
    start = re.search(r"^---$", preview.stdout, re.MULTILINE)
    assert start is not None, preview.stdout
    pipeline: dict[str, Any] = YAML(typ="safe").load(preview.stdout[start.start() :])
    return pipeline


def test_stages_never_overlap_and_see_the_whole_history(
    gitlab_repo: tuple[Path, dict[str, str]],
) -> None:
    pipeline = expanded_pipeline(gitlab_repo)
    # Shallow clones would hide the renew tag that dates next's TLSA.
    assert pipeline["variables"]["GIT_DEPTH"] == "0"
    for name in ("renew", "roll"):
        assert pipeline[name]["resource_group"] == "sslm-ci"
        assert pipeline[name]["stage"] == name
        assert pipeline[name]["artifacts"]["when"] == "always"


def test_gitlab_job_scripts_pass_shellcheck(gitlab_repo: tuple[Path, dict[str, str]]) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck missing: run scripts/install-ci-tools.sh"
    pipeline = expanded_pipeline(gitlab_repo)
    jobs = {
        name: job for name, job in pipeline.items() if isinstance(job, dict) and "script" in job
    }
    assert set(jobs) == {"validate", "plan", "status", "renew", "roll"}
    for name, job in jobs.items():
        # The runner feeds before_script and script to one bash, errexit and pipefail on.
        body = "\n".join([*job.get("before_script", []), *job["script"]])
        script = f"#!/bin/bash\nset -eo pipefail\n{body}\n"
        result = run([shellcheck, "--severity=info", "-"], input_text=script)
        assert result.returncode == 0, (name, result.stdout)


# ---------------------------------------------------------------------------------------------
# GitHub workflows under act (host mode)
# ---------------------------------------------------------------------------------------------

# act cannot fetch actions offline. The copy it runs swaps actions/checkout for a clone of the
# bare remote and drops actions/setup-python (this venv's Python is first on PATH); every run:
# step, env:, if: and output is the template's own.
CHECKOUT_STAND_IN = 'git clone -q --branch "$SSLM_TEST_BRANCH" "$SSLM_TEST_REMOTE" .'


def for_act(template: Path, dest: Path) -> Path:
    yaml = YAML()
    workflow = yaml.load(template.read_text())
    swapped = 0
    for job in workflow["jobs"].values():
        steps = []
        for step in job["steps"]:
            uses = str(step.get("uses", ""))
            if uses.startswith("actions/checkout@"):
                steps.append({"name": step["name"], "run": CHECKOUT_STAND_IN})
                swapped += 1
            elif uses.startswith("actions/setup-python@"):
                swapped += 1
            else:
                assert not uses, f"no offline stand-in for {uses}"
                steps.append(step)
        job["steps"] = steps
    assert swapped == 2, template
    with dest.open("w") as out:
        yaml.dump(workflow, out)
    return dest


def test_github_schedule_renews_and_dispatch_rolls_with_force(gitops: GitOps) -> None:
    renew = gitops.act(GITHUB_SCHEDULED, "schedule", {"schedule": "17 3 * * *"})
    log = renew.stdout + renew.stderr
    assert renew.returncode == 0, log
    assert "example.net:web-ec: renewed into next (no-current-cert)" in log
    assert gitops.remote_tags() == ["sslm/renew/20261203T120000Z"]
    assert gitops.verify_tag("sslm/renew/20261203T120000Z").returncode == 0

    # One hour later min_roll_mins (90) still holds everything: only force rolls it, DANE too.
    roll = gitops.act(
        GITHUB_SCHEDULED,
        "workflow_dispatch",
        {"inputs": {"stage": "roll", "force": "true"}},  # event payloads carry strings
        now=T0 + timedelta(hours=1),
    )
    log = roll.stdout + roll.stderr
    assert roll.returncode == 0, log
    assert "example.com:mail-ec: rolled next -> curr" in log
    assert gitops.remote_tags() == ["sslm/renew/20261203T120000Z", "sslm/roll/20261203T130000Z"]
    assert gitops.verify_tag("sslm/roll/20261203T130000Z").returncode == 0


def test_github_scheduled_roll_waits_for_min_roll_mins(gitops: GitOps) -> None:
    renew = gitops.act(
        GITHUB_SCHEDULED, "workflow_dispatch", {"inputs": {"stage": "renew", "force": "false"}}
    )
    assert renew.returncode == 0, renew.stdout + renew.stderr
    roll = gitops.act(
        GITHUB_SCHEDULED, "schedule", {"schedule": "17 9,21 * * *"}, now=T0 + timedelta(hours=1)
    )
    log = roll.stdout + roll.stderr
    assert roll.returncode == 0, log
    assert "example.net:web-ec: held (min-roll-mins" in log
    assert gitops.remote_tags() == ["sslm/renew/20261203T120000Z"]


def test_github_stage_without_secrets_fails(gitops: GitOps) -> None:
    result = gitops.act(
        GITHUB_SCHEDULED,
        "workflow_dispatch",
        {"inputs": {"stage": "renew", "force": "false"}},
        secrets=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "the SSLM_SIGNING_KEY secret is not set" in log
    assert "renewed into next" not in log
    assert gitops.remote_tags() == []


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_github_plan_on_a_pull_request(gitops: GitOps, valid: bool) -> None:
    base = gitops.git("rev-parse", "main").strip()
    gitops.git("checkout", "-q", "-b", "add-mail")
    added = gitops.sslm(
        "add-service", "example.net", "mail-ec", "--ca", "my-int", "--san", "mail.example.net"
    )
    assert added.returncode == 0, added.stderr
    if not valid:
        service = gitops.repo / "inventory" / "example.net" / "mail-ec"
        service.write_text(service.read_text() + "signing_ca_typo = 1\n")
    gitops.git("add", "-A", "inventory")
    gitops.git("commit", "-q", "-m", "inventory: add example.net:mail-ec")
    gitops.git("push", "-q", str(gitops.remote), "add-mail")
    result = gitops.act(
        GITHUB_PLAN,
        "pull_request",
        {"pull_request": {"number": 7, "base": {"sha": base, "ref": "main"}}},
        branch="add-mail",
        secrets=False,
    )
    log = result.stdout + result.stderr
    if valid:
        assert result.returncode == 0, log
        assert "example.net:mail-ec: new" in log
    else:
        assert result.returncode != 0
        assert "inventory/example.net/mail-ec" in log
        assert "example.net:mail-ec: new" not in log
