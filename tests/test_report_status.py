"""The fields status gained for the reports: when a due service became due, health, counts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from sslm_ci.policy import CertFacts, RenewInput, Wanted, renewal_decision
from sslm_ci.report.status import _due_since, count_line, health, is_ready, render_json
from tests.test_report_markdown import NOW, at, sample_rows

WANTED = Wanted(frozenset({"mail.example.com"}), "ec:secp256r1", "my-ca")


def facts(issued: float, lifetime: float = 90) -> CertFacts:
    return CertFacts(
        not_before=at(issued),
        not_after=at(issued + lifetime),
        names=WANTED.names,
        key_desc=WANTED.key_desc,
        signing_ca="my-ca",
        serial=7,
    )


def renew_input(curr: CertFacts | None, **kw: object) -> RenewInput:
    base = RenewInput("example.com:mail", NOW, False, WANTED, curr, None, None)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_due_since_is_the_certificates_own_renewal_time_when_expiry_drives_it() -> None:
    # 90-day certificate: renews 30 days before expiry, i.e. 60 days after issue.
    inp = renew_input(facts(issued=-70))
    decision = renewal_decision(inp)
    assert decision.reason == "expires-in-20d"
    assert _due_since(decision, inp) == at(-10)
    expired = renew_input(facts(issued=-95))
    assert renewal_decision(expired).reason == "expired"
    assert _due_since(renewal_decision(expired), expired) == at(-35)


def test_due_since_is_now_without_an_instant_and_none_when_not_due() -> None:
    missing = renew_input(None)
    assert _due_since(renewal_decision(missing), missing) == NOW
    forced = renew_input(facts(issued=-1), force=True)
    assert _due_since(renewal_decision(forced), forced) == NOW
    changed = renew_input(facts(issued=-1), wanted=replace(WANTED, key_desc="rsa:4096"))
    assert renewal_decision(changed).reason == "spec-changed:key"
    assert _due_since(renewal_decision(changed), changed) == NOW
    fresh = renew_input(facts(issued=-1))
    assert _due_since(renewal_decision(fresh), fresh) is None
    # A pending next that is itself due: its renewal time, not curr's.
    nxt = renew_input(facts(issued=-200, lifetime=300), next=facts(issued=-65))
    assert renewal_decision(nxt).reason == "next-expires-in-25d"
    assert _due_since(renewal_decision(nxt), nxt) == at(-5)


def test_health_and_counts() -> None:
    rows = sample_rows()
    assert [health(r, NOW) for r in rows] == ["ok", "due", "ok", "expired", "missing"]
    assert [is_ready(r, NOW) for r in rows] == [True, True, True, False, False]
    assert not is_ready(rows[0], at(75))  # expiry instant itself is outside validity
    assert is_ready(rows[0], at(75) - timedelta(seconds=1))
    assert count_line(rows[:1], NOW) == (
        "1 service, 0 due for renewal, 0 with next waiting to roll"
    )


def test_json_carries_the_new_fields_as_iso_strings() -> None:
    data = json.loads(render_json(sample_rows(), NOW))
    web = data["services"][1]
    assert web["due_since"] == at(-10).isoformat()
    assert web["curr_not_before"] == at(-15).isoformat()
    assert data["services"][0]["due_since"] is None
