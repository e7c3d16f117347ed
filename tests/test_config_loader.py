"""Inventory loader: the seed fixtures load with the values ssl-mgr means, and every kind of
broken inventory is refused with one ConfigError naming the file and the key."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from sslm_ci.config.loader import load_inventory
from sslm_ci.config.model import SERVER_CLASSES, CaOpts, DaneTls, KeyOpts, SvcDepends
from sslm_ci.errors import EXIT_USAGE, ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "config"
SEED = FIXTURES / "seed-appendix"
CA_SELF = FIXTURES / "ca-self"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / "repo" / "inventory"
    shutil.copytree(FIXTURES / name, dest)
    return dest


# -- good inventories -------------------------------------------------------------------------


def test_seed_appendix_globals() -> None:
    inv = load_inventory(SEED)
    g = inv.globals
    assert g.verb is True
    assert g.prod_cert_dir == Path("/etc/ssl-mgr/prod-certs")
    assert g.logdir == Path("/var/log/ssl-mgr/ssl-mgr/Logs")
    assert (g.clean_keep, g.min_roll_mins, g.dns_check_delay) == (5, 90, 240)
    assert g.renew_expire_days == 30.0
    assert g.renew_expire_days_spread == 0.0
    assert g.dns_xtra_ns == ("1.1.1.1", "8.8.8.8", "9.9.9.9", "208.67.222.222")
    assert g.post_copy_cmd == (
        ("example.com", "/etc/ssl-mgr/tools/update-permissions"),
        ("voip.example.com", "/etc/ssl-mgr/tools/voip-checker"),
    )


def test_seed_appendix_groups_and_primaries() -> None:
    inv = load_inventory(SEED)
    assert [(g.domain, g.active, g.services) for g in inv.groups] == [
        ("example.net", True, ("web-ec",)),
        ("example.com", True, ("mail-ec", "mail-rsa", "web-ec")),
        ("ca", True, ("my-root", "my-sub")),
    ]
    assert [(p.domain, p.server, p.port) for p in inv.dns_primaries] == [
        ("default", "10.1.2.3", 11153),
        ("example.com", "10.1.2.3", 11153),
    ]
    assert inv.dns_primary_for("example.net") == inv.dns_primaries[0]
    assert inv.dns_primary_for("example.com") == inv.dns_primaries[1]
    assert inv.root == SEED
    assert inv.repo_root == SEED.parent


def test_seed_appendix_servers() -> None:
    inv = load_inventory(SEED)
    assert list(inv.servers) == list(SERVER_CLASSES)
    dns = inv.servers["dns"]
    assert dns.restart_cmd == ("/etc/dns_tools/scripts/resign.sh",)
    assert dns.acme_dir == Path("/etc/dns_tool/dns/external/staging/zones/include-acme")
    assert dns.tlsa_dirs == (
        Path("/etc/dns_tool/internal/staging/zones/include-tlsa"),
        Path("/etc/dns_tool/external/staging/zones/include-tlsa"),
    )
    assert dns.depends == ("dns",)
    assert (dns.publish, dns.check_port) == ("git", 53)

    smtp = inv.servers["smtp"]
    assert smtp.servers == ("smtp1.internal.example.com", "smtp2.internal.example.com")
    assert smtp.restart_cmd == ("/usr/bin/postfix reload",)
    assert smtp.svc_depends == (SvcDepends("example.com", ("mail-rsa", "mail-ec")),)
    assert smtp.depends == ("dns",)

    assert inv.servers["imap"].restart_cmd == ("/usr/bin/systemctl restart dovecot",)
    web = inv.servers["web"]
    assert web.server_dir == Path("/srv/http/Sites")
    assert web.svc_depends == (SvcDepends("any", ("web-ec",)),)
    other = inv.servers["other"]
    assert other.servers == ("backup.internal.example.com", "voip.internal.example.com")
    assert other.restart_cmd == ()  # '' means nothing to restart


def test_seed_appendix_cas() -> None:
    inv = load_inventory(SEED)
    assert list(inv.cas) == ["le-dns", "le-http", "my-root", "my-sub"]
    assert (inv.cas["le-dns"].ca_type, inv.cas["le-dns"].validation) == ("certbot", "dns-01")
    assert (inv.cas["le-http"].ca_type, inv.cas["le-http"].validation) == ("certbot", "http-01")
    assert inv.cas["le-http"].desc == "Letsencrypt: http-01 validation"
    assert (inv.cas["my-root"].ca_type, inv.cas["my-root"].validation) == ("self", None)
    assert inv.ca_service("my-sub") is inv.service("ca", "my-sub")


def test_seed_appendix_mail_ec() -> None:
    svc = load_inventory(SEED).service("example.com", "mail-ec")
    assert svc.name == "Example.com Mail"
    assert svc.signing_ca == "le-dns"
    assert svc.file == SEED / "example.com" / "mail-ec"
    assert svc.renew_expire_days == 30.0
    assert svc.dane_tls == (DaneTls(25, "tcp", 3, 1, 1),)
    assert svc.dane_tls_ttl == 1800
    assert svc.key == KeyOpts("ec", "secp384r1", 4096)
    assert (svc.x509.CN, svc.x509.O, svc.x509.OU, svc.x509.C) == (
        "example.com",
        "Example Company",
        "IT Mail",
        "US",
    )
    assert svc.x509.email == "hostmaster@example.com"
    assert svc.names == ("example.com", "smtp.example.com", "imap.example.com", "mail.example.com")
    assert svc.ca is None


def test_seed_appendix_other_services() -> None:
    inv = load_inventory(SEED)
    assert inv.service("example.com", "mail-rsa").key.ktype == "rsa"
    assert inv.service("example.com", "mail-rsa").key.rsa_bits == 4096
    root = inv.service("ca", "my-root")
    assert root.is_self_signed
    assert root.ca == CaOpts(sign_end_days=3650, digest="sha512")
    sub = inv.service("ca", "my-sub")
    assert (sub.signing_ca, sub.is_self_signed, sub.ca) == ("my-root", False, CaOpts(90))


def test_ca_self_relative_paths_resolve_against_repo_root(tmp_path: Path) -> None:
    inv = load_inventory(CA_SELF)
    assert inv.globals.prod_cert_dir == FIXTURES / "etc" / "prod-certs"

    inv = load_inventory(CA_SELF, repo_root=tmp_path)
    assert inv.repo_root == tmp_path
    assert inv.globals.prod_cert_dir == tmp_path / "etc" / "prod-certs"
    assert inv.globals.logdir == tmp_path / "var" / "log"
    dns = inv.servers["dns"]
    assert dns.acme_dir == tmp_path / "dns" / "acme"
    assert dns.tlsa_dirs == (tmp_path / "dns" / "tlsa", Path("/srv/dns/tlsa"))
    assert inv.servers["web"].server_dir == tmp_path / "www"


def test_ca_self_values() -> None:
    inv = load_inventory(CA_SELF)
    g = inv.globals
    assert (g.verb, g.clean_keep, g.min_roll_mins) == (False, 3, 60)
    assert g.renew_expire_days is None  # lifetime-based default, decided by the policy
    assert g.renew_expire_days_spread == 2.5
    assert g.dns_xtra_ns == () and g.post_copy_cmd == ()

    dns = inv.servers["dns"]
    assert dns.restart_cmd == ("./scripts/sign-zones", "./scripts/reload-primary")
    assert (dns.publish, dns.check_port) == ("local", 5353)
    web = inv.servers["web"]
    assert web.servers == ()
    assert web.skip_prod_copy is True
    # Both pairs are kept (ssl-mgr kept only the last).
    assert web.svc_depends == (
        SvcDepends("example.com", ("web-self",)),
        SvcDepends("any", ("wild-self", "web-self")),
    )
    assert inv.servers["smtp"].servers == ()

    assert inv.cas["my-int"].ca_type == "local"
    my_int = inv.service("ca", "my-int")
    assert my_int.key == KeyOpts("rsa", "secp384r1", 3072)  # `bits` is rsa_bits
    assert my_int.ca == CaOpts(90, "sha256")
    assert inv.ca_service("my-int") is my_int

    web_self = inv.service("example.com", "web-self")
    assert web_self.renew_expire_days == 20.5
    assert web_self.dane_tls == (
        DaneTls(443, "tcp", 3, 1, 1),
        DaneTls(853, "udp", 2, 0, 2, "MX"),
    )
    assert web_self.dane_tls_ttl == 600
    assert web_self.names == ("www.example.com", "192.0.2.10", "2001:db8::10")
    assert inv.service("example.com", "wild-self").names == ("example.com", "*.example.com")


def test_inactive_groups_are_loaded_but_not_active() -> None:
    inv = load_inventory(CA_SELF)
    org = inv.service("example.org", "web-self")
    assert org.name == "web-self"  # name defaults to the service
    assert (org.group, org.service) == ("example.org", "web-self")
    assert [s.ident for s in inv.active_services()] == [
        "ca:my-root",
        "ca:my-int",
        "example.com:web-self",
        "example.com:wild-self",
    ]


def test_minimal_inventory_takes_model_defaults(tmp_path: Path) -> None:
    (tmp_path / "ssl-mgr.conf").write_text(
        "[[groups]]\ndomain = 'ca'\nservices = ['root']\n", encoding="utf-8"
    )
    (tmp_path / "ca-info.conf").write_text("", encoding="utf-8")
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "root").write_text(
        "signing_ca = 'self'\n[CA]\nsign_end_days = 30\n", encoding="utf-8"
    )
    inv = load_inventory(tmp_path)
    assert inv.groups[0].active is False  # ssl-mgr skips a group without `active`
    assert inv.globals.clean_keep == 5 and inv.globals.prod_cert_dir is None
    assert inv.dns_primaries == ()
    assert all(inv.servers[n].restart_cmd == () for n in SERVER_CLASSES)
    svc = inv.service("ca", "root")
    assert (svc.name, svc.key, svc.ca, svc.dane_tls_ttl) == ("root", KeyOpts(), CaOpts(30), 1800)
    assert inv.active_services() == []


def test_loader_writes_nothing(tmp_path: Path) -> None:
    conf = copy_fixture("ca-self", tmp_path)

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {
            str(p.relative_to(tmp_path)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(tmp_path.rglob("*"))
            if p.is_file()
        }

    before = snapshot()
    load_inventory(conf)
    assert snapshot() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_dir()) == sorted(
        ["repo", "inventory", "ca", "example.com", "example.org"]
    )


# -- bad inventories --------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in ``path``; ``old=""`` appends; ``new=None`` deletes."""

    path: str
    old: str
    new: str | None


@dataclass(frozen=True)
class Bad:
    id: str
    fixture: str
    edits: tuple[Edit, ...]
    file: str  # relative to the inventory dir
    key: str
    expect: tuple[str, ...]  # substrings of the message


def _seed(id: str, edits: tuple[Edit, ...], file: str, key: str, *expect: str) -> Bad:
    return Bad(id, "seed-appendix", edits, file, key, expect)


def _ca(id: str, edits: tuple[Edit, ...], file: str, key: str, *expect: str) -> Bad:
    return Bad(id, "ca-self", edits, file, key, expect)


MAIN = "ssl-mgr.conf"
CAINFO = "ca-info.conf"
MAIL_EC = "example.com/mail-ec"
WEB_SELF = "example.com/web-self"
MY_INT = "ca/my-int"


def e(path: str, old: str, new: str | None) -> tuple[Edit, ...]:
    return (Edit(path, old, new),)


BAD_CASES: list[Bad] = [
    # unknown keys and sections, with suggestions
    _seed(
        "typo-global",
        e(MAIN, "min_roll_mins = 90", "min_rol_mins = 90"),
        MAIN,
        "globals.min_rol_mins",
        "unknown key 'min_rol_mins'; did you mean 'min_roll_mins'?",
    ),
    _seed(
        "typo-section",
        e(MAIN, "[web]", "[wbe]"),
        MAIN,
        "wbe",
        "unknown section 'wbe'; did you mean 'web'?",
    ),
    _seed(
        "typo-section-case",
        e(MAIL_EC, "[X509]", "[x509]"),
        MAIL_EC,
        "x509",
        "unknown section 'x509'; did you mean 'X509'?",
    ),
    _seed(
        "typo-keyopts",
        e(MAIL_EC, "ec_algo = ", "ec_alg = "),
        MAIL_EC,
        "KeyOpts.ec_alg",
        "did you mean 'ec_algo'?",
    ),
    _seed(
        "typo-ca-info",
        e(CAINFO, "ca_type = 'self'\n\n[my-sub]", "ca_tpye = 'self'\n\n[my-sub]"),
        CAINFO,
        "my-root.ca_tpye",
        "did you mean 'ca_type'?",
    ),
    _seed(
        "typo-server-key",
        e(MAIN, "svc_depends = [['any'", "svc_depend = [['any'"),
        MAIN,
        "web.svc_depend",
        "did you mean 'svc_depends'?",
    ),
    _seed(
        "key-in-wrong-section",
        e(MAIL_EC, "renew_expire_days = 30\n", "renew_expire_days = 30\nktype = 'ec'\n"),
        MAIL_EC,
        "ktype",
        "belongs in [KeyOpts]",
    ),
    _seed(
        "top-level-key-after-section",
        e(MAIL_EC, "", "dane_tls_ttl = 300\n"),
        MAIL_EC,
        "X509.dane_tls_ttl",
        "belongs in the top level of the file",
    ),
    _seed(
        "dns-only-key-in-web",
        e(MAIN, "[smtp]\n", "[smtp]\n    publish = 'git'\n"),
        MAIN,
        "smtp.publish",
        "belongs in [dns]",
    ),
    _seed(
        "global-key-in-group",
        e(MAIN, "domain='example.net'", "domain='example.net'\n    verb = true"),
        MAIN,
        "groups[0].verb",
        "belongs in [globals]",
    ),
    # wrong types
    _seed(
        "bool-as-string",
        e(MAIN, "verb = true", "verb = 'true'"),
        MAIN,
        "globals.verb",
        "expected a boolean",
        "string 'true'",
    ),
    _seed(
        "int-as-string",
        e(MAIN, "min_roll_mins = 90", "min_roll_mins = '90'"),
        MAIN,
        "globals.min_roll_mins",
        "expected an integer",
        "string '90'",
        "remove the quotes",
    ),
    _seed(
        "bool-for-int",
        e(MAIN, "clean_keep = 5", "clean_keep = true"),
        MAIN,
        "globals.clean_keep",
        "expected an integer, got boolean true",
    ),
    _seed(
        "string-for-list",
        e(MAIN, "services=['web-ec']", "services='web-ec'"),
        MAIN,
        "groups[0].services",
        "expected an array of strings, got string 'web-ec'",
    ),
    _seed(
        "list-item-type",
        e(MAIN, "dns_xtra_ns = ['1.1.1.1',", "dns_xtra_ns = [1111,"),
        MAIN,
        "globals.dns_xtra_ns[0]",
        "expected a string, got integer 1111",
    ),
    _seed(
        "restart-cmd-type",
        e(MAIN, "restart_cmd = '/usr/bin/postfix reload'", "restart_cmd = 5"),
        MAIN,
        "smtp.restart_cmd",
        "expected a string or an array of strings",
    ),
    _seed(
        "float-for-int",
        e(MAIL_EC, "renew_expire_days = 30\n", "renew_expire_days = 30\ndane_tls_ttl = 1.5\n"),
        MAIL_EC,
        "dane_tls_ttl",
        "expected an integer, got float 1.5",
    ),
    _seed(
        "number-as-string",
        e(MAIL_EC, "renew_expire_days = 30", "renew_expire_days = '30'"),
        MAIL_EC,
        "renew_expire_days",
        "expected a number",
    ),
    _ca(
        "primaries-not-array",
        e(
            MAIN,
            "[globals]",
            "dns_primary = { domain = 'default', server = '10.1.2.3' }\n[globals]",
        ),
        MAIN,
        "dns_primary",
        "expected an array of tables ([[dns_primary]] entries), got table",
    ),
    _seed(
        "globals-not-table",
        e(MAIN, "[globals]", "[[globals]]"),
        MAIN,
        "globals",
        "expected a table [globals], got array",
    ),
    _seed(
        "out-of-range",
        e(MAIN, "clean_keep = 5", "clean_keep = 0"),
        MAIN,
        "globals.clean_keep",
        "expected an integer >= 1, got 0",
    ),
    _seed(
        "negative-renew",
        e(MAIN, "renew_expire_days = 30", "renew_expire_days = -3"),
        MAIN,
        "globals.renew_expire_days",
        "expected a number > 0",
    ),
    # domain names
    _seed(
        "group-domain-underscore",
        e(MAIN, "domain = 'example.com'\n    services", "domain = 'exa_mple.com'\n    services"),
        MAIN,
        "groups[1].domain",
        "'exa_mple.com' is not a valid domain name",
        "or 'ca'",
    ),
    _seed(
        "group-domain-hyphen",
        e(MAIN, "domain='example.net'", "domain='-example.net'"),
        MAIN,
        "groups[0].domain",
        "not start or end with '-'",
    ),
    _seed(
        "group-domain-duplicate",
        e(MAIN, "domain = 'ca'", "domain = 'example.net'"),
        MAIN,
        "groups[2].domain",
        "already defined by groups[0]",
    ),
    _seed(
        "san-empty-label",
        e(MAIL_EC, "'smtp.example.com'", "'smtp..example.com'"),
        MAIL_EC,
        "X509.sans[1]",
        "empty label",
    ),
    _seed(
        "san-inner-wildcard",
        e(MAIL_EC, "'smtp.example.com'", "'smtp.*.example.com'"),
        MAIL_EC,
        "X509.sans[1]",
        "only allowed as the whole leftmost label",
    ),
    _seed(
        "san-bad-ip",
        e(MAIL_EC, "'smtp.example.com'", "'10.1.2.300'"),
        MAIL_EC,
        "X509.sans[1]",
        "all digits",
    ),
    _seed(
        "san-duplicate",
        e(MAIL_EC, "'mail.example.com']", "'Mail.example.com', 'mail.example.com']"),
        MAIL_EC,
        "X509.sans[4]",
        "repeats sans[3]",
    ),
    _seed(
        "primary-domain",
        e(MAIN, "domain = 'default'", "domain = 'defualt!'"),
        MAIN,
        "dns_primary[0].domain",
        "expected an apex domain or 'default'",
    ),
    _seed(
        "primary-port",
        e(MAIN, "port = 11153\n\n[[dns_primary]]", "port = 0\n\n[[dns_primary]]"),
        MAIN,
        "dns_primary[0].port",
        "between 1 and 65535",
    ),
    # service names
    _seed(
        "service-slash",
        e(MAIN, "services = ['mail-ec',", "services = ['mail/ec',"),
        MAIN,
        "groups[1].services[0]",
        "bad service name 'mail/ec'",
        "'/'",
    ),
    _seed(
        "service-dotdot",
        e(MAIN, "services=['web-ec']", "services=['..']"),
        MAIN,
        "groups[0].services[0]",
        "'..' is not a usable directory name",
    ),
    _seed(
        "service-empty",
        e(MAIN, "services=['web-ec']", "services=['']"),
        MAIN,
        "groups[0].services[0]",
        "empty name",
    ),
    _seed(
        "service-comma",
        e(MAIN, "services=['web-ec']", "services=['web,ec']"),
        MAIN,
        "groups[0].services[0]",
        "','",
    ),
    # dane_tls
    _seed(
        "dane-short",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tcp', 3, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "expected [port, proto, usage, selector, match]",
    ),
    _seed(
        "dane-flat",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[25, 'tcp', 3, 1, 1]"),
        MAIL_EC,
        "dane_tls",
        "[[25, 'tcp', 3, 1, 1]]",
    ),
    _seed(
        "dane-port",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[70000, 'tcp', 3, 1, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "port: expected an integer between 1 and 65535, got 70000",
    ),
    _seed(
        "dane-port-bool",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[true, 'tcp', 3, 1, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "port: expected an integer, got boolean true",
    ),
    _seed(
        "dane-proto",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tpc', 3, 1, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "proto: expected one of tcp, udp, sctp, got 'tpc'",
    ),
    _seed(
        "dane-usage",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tcp', 4, 1, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "usage: expected an integer between 0 and 3, got 4",
    ),
    _seed(
        "dane-selector",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tcp', 3, 2, 1]]"),
        MAIL_EC,
        "dane_tls[0]",
        "selector: expected an integer between 0 and 1, got 2",
    ),
    _seed(
        "dane-match",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tcp', 3, 1, 1], [25, 'tcp', 3, 1, 3]]"),
        MAIL_EC,
        "dane_tls[1]",
        "match: expected an integer between 0 and 2, got 3",
    ),
    _seed(
        "dane-placement",
        e(MAIL_EC, "[[25, 'tcp', 3, 1, 1]]", "[[25, 'tcp', 3, 1, 1, 'NS']]"),
        MAIL_EC,
        "dane_tls[0]",
        "6th field: expected 'MX' or 'SANS', got 'NS'",
    ),
    # signing CAs
    _seed(
        "signing-ca-unknown",
        e(MAIL_EC, "signing_ca = 'le-dns'", "signing_ca = 'le-dsn'"),
        MAIL_EC,
        "signing_ca",
        "unknown CA 'le-dsn'",
        "did you mean 'le-dns'?",
    ),
    _ca(
        "signing-ca-without-service",
        (
            Edit(CAINFO, "", "\n[orphan]\n    ca_type = 'local'\n"),
            Edit(WEB_SELF, "signing_ca = 'my-int'", "signing_ca = 'orphan'"),
        ),
        WEB_SELF,
        "signing_ca",
        "no service holds its key",
        "ca/orphan",
    ),
    _ca(
        "signing-ca-service-not-listed",
        e(MAIN, "services = ['my-root', 'my-int']", "services = ['my-root']"),
        WEB_SELF,
        "signing_ca",
        "CA 'my-int' is a 'local' CA but no service holds its key",
    ),
    _ca(
        "leaf-signer-has-no-CA-section",
        e(
            MY_INT,
            "[CA]\n    # lifetime of the certificates this CA signs\n"
            "    sign_end_days = 90\n    digest = 'sha256'\n",
            "",
        ),
        WEB_SELF,
        "signing_ca",
        "has no [CA] section",
        str(Path("ca") / "my-int"),
    ),
    _ca(
        "ca-cycle",
        e("ca/my-root", "signing_ca = 'self'", "signing_ca = 'my-int'"),
        "ca/my-int",
        "signing_ca",
        "cycle: my-root -> my-int -> my-root",
    ),
    _seed(
        "ca-signed-by-acme",
        e("ca/my-sub", "signing_ca = 'my-root'", "signing_ca = 'le-dns'"),
        "ca/my-sub",
        "CA",
        "does not issue CA certificates",
    ),
    _ca(
        "self-signed-needs-CA",
        e(WEB_SELF, "signing_ca = 'my-int'", "signing_ca = 'self'"),
        WEB_SELF,
        "signing_ca",
        "self-signed service",
        "[CA] section",
    ),
    _ca(
        "ca-section-needs-sign-end-days",
        e(MY_INT, "sign_end_days = 90\n", ""),
        MY_INT,
        "CA.sign_end_days",
        "required in [CA]",
    ),
    _ca(
        "sign-end-days-zero",
        e(MY_INT, "sign_end_days = 90", "sign_end_days = 0"),
        MY_INT,
        "CA.sign_end_days",
        "expected an integer >= 1, got 0",
    ),
    _ca(
        "digest",
        e(MY_INT, "digest = 'sha256'", "digest = 'md5'"),
        MY_INT,
        "CA.digest",
        "expected one of 'sha256', 'sha384', 'sha512', got 'md5'",
    ),
    # files
    _ca(
        "service-file-missing",
        e(MAIN, "services = ['web-self', 'wild-self']", "services = ['web-self', 'wild-selff']"),
        MAIN,
        "groups[1].services[1]",
        "example.com:wild-selff has no service file",
        str(Path("example.com") / "wild-selff"),
        "does not exist",
    ),
    _ca(
        "inactive-group-service-file-missing",
        e("example.org/web-self", "", None),
        MAIN,
        "groups[2].services[0]",
        str(Path("example.org") / "web-self"),
    ),
    _ca(
        "inactive-group-service-invalid",
        e("example.org/web-self", "sans = ['example.org']", "sans = ['example..org']"),
        "example.org/web-self",
        "X509.sans[0]",
        "empty label",
    ),
    _ca(
        "group-key-mismatch",
        e(WEB_SELF, "group = 'example.com'", "group = 'example.net'"),
        WEB_SELF,
        "group",
        "says 'example.net' but the file is example.com/web-self",
    ),
    _ca(
        "service-key-mismatch",
        e(WEB_SELF, "service = 'web-self'", "service = 'web'"),
        WEB_SELF,
        "service",
        "expected service = 'web-self'",
    ),
    _seed(
        "docs-stray-bracket",
        e(
            MAIN,
            "'/etc/ssl-mgr/tools/voip-checker']]\n",
            "'/etc/ssl-mgr/tools/voip-checker']]\n    ]\n",
        ),
        MAIN,
        "",
        "invalid TOML",
        "(at line 16, column 5)",
    ),
    _ca(
        "service-invalid-toml",
        e(WEB_SELF, "dane_tls_ttl = 600", "dane_tls_ttl = = 600"),
        WEB_SELF,
        "",
        "invalid TOML",
        "(at line 9, column 16)",
    ),
    _ca("main-missing", e(MAIN, "", None), MAIN, "", "file not found"),
    _ca("ca-info-missing", e(CAINFO, "", None), CAINFO, "", "file not found"),
    # ACME services
    _seed(
        "acme-needs-a-name",
        (
            Edit("example.net/web-ec", "CN = 'example.net'", "CN = ''"),
            Edit("example.net/web-ec", "sans = ['example.net', 'www.example.net']", "sans = []"),
        ),
        "example.net/web-ec",
        "X509.sans",
        "needs at least one name",
    ),
    _seed(
        "acme-cn-only-must-be-a-name",
        (
            Edit("example.net/web-ec", "CN = 'example.net'", "CN = 'Example Web'"),
            Edit("example.net/web-ec", "sans = ['example.net', 'www.example.net']", "sans = []"),
        ),
        "example.net/web-ec",
        "X509.CN",
        "used as the only name",
    ),
    _seed(
        "http01-wildcard",
        e("example.com/web-ec", "signing_ca = 'le-dns'", "signing_ca = 'le-http'"),
        "example.com/web-ec",
        "X509.sans[1]",
        "wildcard '*.example.com' cannot be validated by http-01",
    ),
    # ca-info
    _seed(
        "ca-type",
        e(CAINFO, "ca_type = 'certbot'\n    ca_validation = 'dns-01'", "ca_type = 'acme'"),
        CAINFO,
        "le-dns.ca_type",
        "expected one of 'self', 'local', 'certbot', got 'acme'",
    ),
    _seed(
        "certbot-needs-validation",
        e(CAINFO, "    ca_validation = 'dns-01'\n", ""),
        CAINFO,
        "le-dns.ca_validation",
        "required key missing",
        "'dns-01', 'http-01'",
    ),
    _seed(
        "validation-value",
        e(CAINFO, "ca_validation = 'http-01'", "ca_validation = 'http01'"),
        CAINFO,
        "le-http.ca_validation",
        "did you mean 'http-01'?",
    ),
    _seed(
        "ca-server-url",
        e(CAINFO, "ca_validation = 'http-01'", "ca_validation = 'http-01'\nca_server = 'ftp://x'"),
        CAINFO,
        "le-http.ca_server",
        "expected an http(s) URL",
    ),
    _seed(
        "ca-name-self",
        e(CAINFO, "[my-root]", "[self]"),
        CAINFO,
        "self",
        "reserved",
    ),
    _seed(
        "ca-not-a-table",
        e(CAINFO, "[le-dns]", "ca_type = 'self'\n[le-dns]"),
        CAINFO,
        "ca_type",
        "expected a table [ca_type] describing one CA",
        "go under a [ca-name] header",
    ),
    # key options and names
    _seed(
        "ktype",
        e(MAIL_EC, "ktype = 'ec'", "ktype = 'dsa'"),
        MAIL_EC,
        "KeyOpts.ktype",
        "expected one of 'ec', 'rsa', got 'dsa'",
    ),
    _seed(
        "ec-algo",
        e(MAIL_EC, "ec_algo = 'secp384r1'", "ec_algo = 'prime256v1'"),
        MAIL_EC,
        "KeyOpts.ec_algo",
        "expected one of 'secp256r1', 'secp384r1', 'secp521r1', got 'prime256v1'",
    ),
    _seed(
        "rsa-bits",
        e("example.com/mail-rsa", "rsa_bits = 4096", "rsa_bits = 1024"),
        "example.com/mail-rsa",
        "KeyOpts.rsa_bits",
        "between 2048 and 4096",
    ),
    _seed(
        "bits-and-rsa-bits",
        e("example.com/mail-rsa", "rsa_bits = 4096", "rsa_bits = 4096\n    bits = 2048"),
        "example.com/mail-rsa",
        "KeyOpts.bits",
        "not both",
    ),
    _seed(
        "country",
        e(MAIL_EC, "C = 'US'", "C = 'USA'"),
        MAIL_EC,
        "X509.C",
        "2-letter country code",
    ),
    _seed(
        "email",
        e(MAIL_EC, "email = 'hostmaster@example.com'", "email = 'hostmaster'"),
        MAIL_EC,
        "X509.email",
        "expected an e-mail address",
    ),
    # servers
    _seed(
        "svc-depends-unknown-service",
        e(MAIN, "svc_depends = [['any', ['web-ec']]]", "svc_depends = [['any', ['web-ecc']]]"),
        MAIN,
        "web.svc_depends[0]",
        "service 'web-ecc' is not listed in any group",
        "did you mean 'web-ec'?",
    ),
    _ca(
        "svc-depends-second-pair",
        e(MAIN, "['any', ['wild-self', 'web-self']]", "['any', ['wild-self', 'web-sef']]"),
        MAIN,
        "web.svc_depends[1]",
        "did you mean 'web-self'?",
    ),
    _seed(
        "svc-depends-unknown-domain",
        e(
            MAIN,
            "svc_depends = [['example.com', ['mail-rsa', 'mail-ec']]]\n    depends",
            "svc_depends = [['example.org', ['mail-rsa', 'mail-ec']]]\n    depends",
        ),
        MAIN,
        "smtp.svc_depends[0]",
        "domain 'example.org' is not a [[groups]] domain",
    ),
    _seed(
        "svc-depends-bare-pair",
        e(MAIN, "svc_depends = [['any', ['web-ec']]]", "svc_depends = ['any', ['web-ec']]"),
        MAIN,
        "web.svc_depends",
        "one bare pair",
    ),
    _seed(
        "svc-depends-malformed",
        e(MAIN, "svc_depends = [['any', ['web-ec']]]", "svc_depends = [['any', 'web-ec']]"),
        MAIN,
        "web.svc_depends[0]",
        "expected an array of service names",
    ),
    _seed(
        "depends-typo",
        e(MAIN, "depends = ['dns']\n\n[smtp]", "depends = ['dsn']\n\n[smtp]"),
        MAIN,
        "dns.depends[0]",
        "did you mean 'dns'?",
    ),
    _seed(
        "post-copy-not-pair",
        e(MAIN, "['voip.example.com', '/etc/ssl-mgr/tools/voip-checker']", "['voip.example.com']"),
        MAIN,
        "globals.post_copy_cmd[1]",
        "expected a [host, command] pair",
    ),
    _seed(
        "server-host",
        e(MAIN, "servers = ['imap.internal.example.com']", "servers = ['imap internal']"),
        MAIN,
        "imap.servers[0]",
        "expected a host name or IP",
    ),
    _ca(
        "publish",
        e(MAIN, "publish = 'local'", "publish = 'rsync'"),
        MAIN,
        "dns.publish",
        "expected one of 'git', 'local', got 'rsync'",
    ),
    _ca(
        "check-port",
        e(MAIN, "check_port = 5353", "check_port = '5353'"),
        MAIN,
        "dns.check_port",
        "expected an integer",
    ),
    _ca(
        "restart-cmd-empty-item",
        e(MAIN, "'./scripts/reload-primary'", "''"),
        MAIN,
        "dns.restart_cmd[1]",
        "empty command",
    ),
    _ca(
        "empty-path",
        e(MAIN, "logdir = './var/log'", "logdir = ''"),
        MAIN,
        "globals.logdir",
        "expected a non-empty path",
    ),
    _ca(
        "group-without-services",
        e(MAIN, "services = ['web-self']", "services = []"),
        MAIN,
        "groups[2].services",
        "at least one service",
    ),
    _ca(
        "group-wildcard-services",
        e(MAIN, "services = ['web-self']", "services = ['ALL']"),
        MAIN,
        "groups[2].services[0]",
        "wildcard service lists are not supported",
    ),
]


def apply_edits(conf: Path, edits: tuple[Edit, ...]) -> None:
    for edit in edits:
        target = conf / edit.path
        if edit.new is None:
            target.unlink()
            continue
        if edit.old == "":
            with target.open("a", encoding="utf-8") as fh:
                fh.write(edit.new)
            continue
        text = target.read_text(encoding="utf-8")
        assert text.count(edit.old) == 1, f"fixture edit {edit.old!r} must match once"
        target.write_text(text.replace(edit.old, edit.new), encoding="utf-8")


@pytest.mark.parametrize("case", BAD_CASES, ids=[c.id for c in BAD_CASES])
def test_bad_inventory_is_refused(case: Bad, tmp_path: Path) -> None:
    conf = copy_fixture(case.fixture, tmp_path)
    load_inventory(conf)  # the unedited copy is valid, so the edit is what breaks it
    apply_edits(conf, case.edits)

    with pytest.raises(ConfigError) as caught:
        load_inventory(conf)

    err = caught.value
    assert err.exit_code == EXIT_USAGE
    assert Path(err.file) == conf / case.file
    assert err.key == case.key
    message = str(err)
    assert message.startswith(f"{conf / case.file}: ")
    if case.key:
        assert f": {case.key}: " in message
    for fragment in case.expect:
        assert fragment in message, message


def test_bad_cases_are_distinct() -> None:
    assert len(BAD_CASES) >= 20
    assert len({c.id for c in BAD_CASES}) == len(BAD_CASES)
