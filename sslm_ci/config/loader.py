"""Read an ssl-mgr inventory (``ssl-mgr.conf``, ``ca-info.conf``, ``<group>/<service>``) into
:class:`~sslm_ci.config.model.Inventory`, rejecting anything ssl-mgr would misread.

Read-only: nothing is written. The first problem found raises one :class:`ConfigError`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from sslm_ci.config.model import (
    CA_GROUP,
    SERVER_CLASSES,
    CaInfo,
    CaOpts,
    CaType,
    DaneTls,
    DnsPrimary,
    Globals,
    Group,
    Inventory,
    KeyOpts,
    KeyType,
    ServerClass,
    Service,
    SvcDepends,
    Validation,
    X509Name,
)
from sslm_ci.config.validate import (
    Table,
    check_int,
    check_port,
    describe,
    did_you_mean,
    dns_name_problem,
    host_problem,
    plain_name_problem,
    resolve_path,
)
from sslm_ci.errors import ConfigError

SSL_MGR_CONF = "ssl-mgr.conf"
CA_INFO_CONF = "ca-info.conf"

SELF_SIGNED = "self"
# svc_depends domains ssl-mgr treats as "any group"; stored as "any".
_ANY_DOMAIN = frozenset({"any", "all", "*"})
_DEFAULT_PRIMARY = "default"

_GLOBAL_KEYS = (
    "verb",
    "prod_cert_dir",
    "logdir",
    "clean_keep",
    "min_roll_mins",
    "renew_expire_days",
    "renew_expire_days_spread",
    "dns_check_delay",
    "dns_xtra_ns",
    "post_copy_cmd",
    "sslm_auth_hook",
    "acme_max_orders",
    "acme_parallel",
    "tlsa_retire_mins",
)
_GROUP_KEYS = ("active", "domain", "services")
_PRIMARY_KEYS = ("domain", "server", "port", "wait_instead")
_SERVER_KEYS = (
    "servers",
    "restart_cmd",
    "svc_depends",
    "depends",
    "server_dir",
    "acme_dir",
    "tlsa_dirs",
    "skip_prod_copy",
)
_DNS_ONLY_KEYS = ("publish", "check_port", "check_timeout")
_MAIN_SECTIONS = ("globals", "groups", "dns_primary", *SERVER_CLASSES)

_CA_KEYS = (
    "ca_desc",
    "ca_type",
    "ca_validation",
    "ca_server",
    "ca_trust",
    "ca_preferred_chain",
    "ca_profile",
)
_CA_TYPES: dict[str, CaType] = {"self": "self", "local": "local", "certbot": "certbot"}
_VALIDATIONS: dict[str, Validation] = {"dns-01": "dns-01", "http-01": "http-01"}

_SVC_TOP_KEYS = (
    "name",
    "group",
    "service",
    "signing_ca",
    "renew_expire_days",
    "dane_tls",
    "dane_tls_ttl",
)
_SVC_SECTIONS = ("KeyOpts", "X509", "CA")
_KEYOPT_KEYS = ("ktype", "ec_algo", "rsa_bits", "bits")
_X509_KEYS = ("CN", "O", "OU", "L", "ST", "C", "email", "sans")
_CAOPT_KEYS = ("sign_end_days", "digest")
_KEY_TYPES: dict[str, KeyType] = {"ec": "ec", "rsa": "rsa"}
_EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_RSA_BITS = (2048, 4096)
_DIGESTS = ("sha256", "sha384", "sha512")
_DANE_PROTOS = ("tcp", "udp", "sctp")
_DANE_PLACEMENTS = ("MX", "SANS")
_MAX_TTL = 2**31 - 1

_SERVER_SECTIONS_TEXT = "a server section ([dns], [smtp], [imap], [web] or [other])"
_TOP_LEVEL_TEXT = "the top level of the file, above the first [section]"


def load_inventory(conf_dir: Path, repo_root: Path | None = None) -> Inventory:
    """Load and validate the whole inventory under ``conf_dir``.

    Every service listed by every ``[[groups]]`` entry is read and checked, active or not.
    Relative paths in the config resolve against ``repo_root`` (default: ``conf_dir.parent``).
    """
    base = conf_dir.parent if repo_root is None else repo_root
    main_file = conf_dir / SSL_MGR_CONF
    ca_file = conf_dir / CA_INFO_CONF
    main_raw = _read_toml(main_file)
    ca_raw = _read_toml(ca_file)

    glob, groups, primaries, servers = _parse_main(main_file, main_raw, base)
    cas = _parse_ca_info(ca_file, ca_raw, base)

    services: dict[tuple[str, str], Service] = {}
    for gi, group in enumerate(groups):
        for si, svc_name in enumerate(group.services):
            svc_file = conf_dir / group.domain / svc_name
            if not svc_file.is_file():
                state = "is not a regular file" if svc_file.exists() else "does not exist"
                raise ConfigError(
                    main_file,
                    f"groups[{gi}].services[{si}]",
                    f"service {group.domain}:{svc_name} has no service file: {svc_file} {state}",
                )
            services[(group.domain, svc_name)] = _parse_service(
                svc_file, _read_toml(svc_file), group.domain, svc_name, cas
            )

    inv = Inventory(
        root=conf_dir,
        repo_root=base,
        globals=glob,
        groups=groups,
        dns_primaries=primaries,
        servers=servers,
        cas=cas,
        services=services,
    )
    _check_svc_depends(main_file, inv)
    _check_local_signers(inv)
    _check_ca_chains(inv)
    return inv


def _read_toml(path: Path) -> dict[str, object]:
    if not path.exists():
        raise ConfigError(path, "", "file not found")
    if not path.is_file():
        raise ConfigError(path, "", "not a regular file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text (byte offset {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror or exc}") from exc


def _placements(*sections: tuple[str, Iterable[str]]) -> dict[str, str]:
    """Key -> where it belongs, to explain a key written in the wrong table."""
    out: dict[str, str] = {}
    for where, keys in sections:
        for key in keys:
            out[key] = f"{out[key]} or {where}" if key in out else where
    return out


# -- ssl-mgr.conf -----------------------------------------------------------------------------


def _parse_main(
    file: Path, raw: Mapping[str, object], base: Path
) -> tuple[Globals, tuple[Group, ...], tuple[DnsPrimary, ...], dict[str, ServerClass]]:
    top = Table(
        file,
        "",
        raw,
        _MAIN_SECTIONS,
        elsewhere=_placements(
            ("[globals]", _GLOBAL_KEYS),
            ("[[groups]]", _GROUP_KEYS),
            ("[[dns_primary]]", _PRIMARY_KEYS),
            (_SERVER_SECTIONS_TEXT, _SERVER_KEYS),
            ("[dns]", _DNS_ONLY_KEYS),
        ),
    )
    glob_raw = top.table("globals")
    glob = _parse_globals(file, glob_raw or {}, base)
    groups = _parse_groups(file, _array_of_tables(top, "groups"))
    primaries = _parse_primaries(file, _array_of_tables(top, "dns_primary"))
    servers: dict[str, ServerClass] = {}
    for name in SERVER_CLASSES:
        servers[name] = _parse_server(file, name, top.table(name) or {}, base)
    return glob, groups, primaries, servers


def _array_of_tables(top: Table, key: str) -> list[Mapping[str, object]]:
    value = top.data.get(key, [])
    expected = f"an array of tables ([[{key}]] entries)"
    if not isinstance(value, list):
        top.wrong_type(key, expected, value)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ConfigError(top.file, f"{key}[{i}]", f"expected a table, got {describe(item)}")
    return value


def _parse_globals(file: Path, raw: Mapping[str, object], base: Path) -> Globals:
    t = Table(
        file,
        "globals",
        raw,
        _GLOBAL_KEYS,
        elsewhere=_placements(
            ("[[groups]]", _GROUP_KEYS),
            ("[[dns_primary]]", _PRIMARY_KEYS),
            (_SERVER_SECTIONS_TEXT, _SERVER_KEYS),
            ("[dns]", _DNS_ONLY_KEYS),
        ),
    )
    # Accepted for compatibility: certbot's hook is ours now, the configured path is unused.
    t.opt_string("sslm_auth_hook", non_empty=False)
    xtra_ns = t.string_list("dns_xtra_ns")
    for i, ns in enumerate(xtra_ns):
        problem = host_problem(ns)
        if problem:
            raise ConfigError(
                file, f"globals.dns_xtra_ns[{i}]", f"expected a name server IP or name: {problem}"
            )
    return Globals(
        verb=t.boolean("verb", False),
        prod_cert_dir=t.path_value("prod_cert_dir", base),
        logdir=t.path_value("logdir", base),
        clean_keep=t.integer("clean_keep", 5, lo=1),
        min_roll_mins=t.integer("min_roll_mins", 90, lo=0),
        renew_expire_days=t.number("renew_expire_days", positive=True),
        renew_expire_days_spread=t.number("renew_expire_days_spread", lo=0) or 0.0,
        dns_check_delay=t.integer("dns_check_delay", 0, lo=0),
        dns_xtra_ns=tuple(xtra_ns),
        post_copy_cmd=_parse_post_copy(t),
        acme_max_orders=t.integer("acme_max_orders", 300, lo=1),
        acme_parallel=t.integer("acme_parallel", 50, lo=1),
        tlsa_retire_mins=t.integer("tlsa_retire_mins", 60, lo=0),
    )


def _parse_post_copy(t: Table) -> tuple[tuple[str, str], ...]:
    expected = "an array of [host, command] pairs"
    items = t.array("post_copy_cmd", expected=expected)
    if len(items) == 2 and all(isinstance(x, str) for x in items):
        t.fail("post_copy_cmd", f"expected {expected}; got one bare pair: wrap it in [ ]")
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        key = t.path(f"post_copy_cmd[{i}]")
        if not (isinstance(item, list) and len(item) == 2):
            raise ConfigError(t.file, key, f"expected a [host, command] pair, got {_show(item)}")
        host, cmd = item
        if not isinstance(host, str) or not isinstance(cmd, str):
            raise ConfigError(t.file, key, f"expected two strings [host, command], got {item!r}")
        problem = host_problem(host)
        if problem:
            raise ConfigError(t.file, key, f"host {host!r} is not a host name or IP: {problem}")
        if not cmd.strip():
            raise ConfigError(t.file, key, f"empty command for host {host!r}")
        pairs.append((host, cmd))
    return tuple(pairs)


def _parse_groups(file: Path, items: list[Mapping[str, object]]) -> tuple[Group, ...]:
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for gi, raw in enumerate(items):
        t = Table(
            file,
            f"groups[{gi}]",
            raw,
            _GROUP_KEYS,
            elsewhere=_placements(
                ("[globals]", _GLOBAL_KEYS), (_SERVER_SECTIONS_TEXT, _SERVER_KEYS)
            ),
        )
        domain = t.string("domain")
        if domain != CA_GROUP:
            problem = dns_name_problem(domain)
            if problem:
                t.fail(
                    "domain",
                    f"{domain!r} is not a valid domain name ({problem}); "
                    f"expected an apex domain or '{CA_GROUP}'",
                )
        if domain in seen:
            t.fail("domain", f"group {domain!r} is already defined by groups[{seen[domain]}]")
        seen[domain] = gi
        if not t.has("services"):
            t.fail("services", "required key missing (expected an array of service names)")
        services = t.string_list("services")
        if not services:
            t.fail("services", "a group needs at least one service")
        for si, svc in enumerate(services):
            key = f"services[{si}]"
            if svc in ("*", "ALL"):
                t.fail(key, "wildcard service lists are not supported: name each service")
            problem = plain_name_problem(svc)
            if problem:
                t.fail(key, f"bad service name {svc!r}: {problem}")
            if svc in services[:si]:
                t.fail(key, f"service {svc!r} is listed twice")
        # ssl-mgr skips a group whose 'active' is absent.
        groups.append(
            Group(domain=domain, active=t.boolean("active", False), services=tuple(services))
        )
    return tuple(groups)


def _parse_primaries(file: Path, items: list[Mapping[str, object]]) -> tuple[DnsPrimary, ...]:
    primaries: list[DnsPrimary] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(items):
        t = Table(file, f"dns_primary[{i}]", raw, _PRIMARY_KEYS)
        domain = t.string("domain")
        if domain != _DEFAULT_PRIMARY:
            problem = dns_name_problem(domain)
            if problem:
                t.fail(
                    "domain",
                    f"{domain!r} is not a valid domain name ({problem}); "
                    f"expected an apex domain or '{_DEFAULT_PRIMARY}'",
                )
        if domain in seen:
            t.fail("domain", f"{domain!r} already has a primary in dns_primary[{seen[domain]}]")
        seen[domain] = i
        server = t.string("server")
        problem = host_problem(server)
        if problem:
            t.fail("server", f"expected an IP address or host name: {problem}")
        port = check_port(file, t.path("port"), raw.get("port", 53))
        wait_instead = t.number("wait_instead", lo=0)
        primaries.append(
            DnsPrimary(domain=domain, server=server, port=port, wait_instead=wait_instead)
        )
    return tuple(primaries)


def _publish_mode(t: Table, name: str) -> str:
    """[dns]: challenges reach the primary via git (default) or locally; [web]: http-01 tokens
    are written into server_dir here (default, ssl-mgr's way) or published via git."""
    if name == "dns":
        return t.choice("publish", ("git", "local"), "git")
    if name == "web":
        return t.choice("publish", ("git", "local"), "local")
    return "local"


def _parse_server(file: Path, name: str, raw: Mapping[str, object], base: Path) -> ServerClass:
    if name == "dns":
        allowed: tuple[str, ...] = (*_SERVER_KEYS, *_DNS_ONLY_KEYS)
    elif name == "web":
        allowed = (*_SERVER_KEYS, "publish")  # http-01 tokens: written locally or via git
    else:
        allowed = _SERVER_KEYS
    elsewhere = _placements(("[globals]", _GLOBAL_KEYS), ("[[groups]]", ("active", "services")))
    if name != "dns":
        dns_only = tuple(k for k in _DNS_ONLY_KEYS if name != "web" or k != "publish")
        elsewhere.update(_placements(("[dns]", dns_only)))
    t = Table(file, name, raw, allowed, elsewhere=elsewhere)

    servers = t.string_list("servers")
    for i, host in enumerate(servers):
        problem = host_problem(host)
        if problem:
            t.fail(f"servers[{i}]", f"expected a host name or IP: {problem}")

    depends = t.string_list("depends")
    for i, dep in enumerate(depends):
        if dep not in SERVER_CLASSES:
            t.fail(
                f"depends[{i}]",
                f"expected a server class ({', '.join(SERVER_CLASSES)}), got {dep!r}"
                + did_you_mean(dep, SERVER_CLASSES),
            )

    tlsa_dirs = tuple(
        resolve_path(file, t.path(f"tlsa_dirs[{i}]"), d, base)
        for i, d in enumerate(t.array("tlsa_dirs", expected="an array of paths"))
    )
    return ServerClass(
        name=name,
        servers=tuple(servers),
        restart_cmd=_parse_restart_cmd(t),
        svc_depends=_parse_svc_depends(t),
        depends=tuple(depends),
        server_dir=t.path_value("server_dir", base),
        acme_dir=t.path_value("acme_dir", base),
        tlsa_dirs=tlsa_dirs,
        skip_prod_copy=t.boolean("skip_prod_copy", False),
        publish=_publish_mode(t, name),
        check_port=check_port(file, t.path("check_port"), raw.get("check_port", 53)),
        check_timeout=t.integer("check_timeout", 600, lo=1) if name == "dns" else 600,
    )


def _parse_restart_cmd(t: Table) -> tuple[str, ...]:
    value = t.data.get("restart_cmd", "")
    if isinstance(value, str):
        # ssl-mgr's own examples write '' for "nothing to restart".
        return (value,) if value.strip() else ()
    if not isinstance(value, list):
        t.wrong_type("restart_cmd", "a string or an array of strings", value)
    cmds = t.string_list("restart_cmd", expected="a string or an array of strings")
    for i, cmd in enumerate(cmds):
        if not cmd.strip():
            t.fail(f"restart_cmd[{i}]", "empty command")
    return tuple(cmds)


def _parse_svc_depends(t: Table) -> tuple[SvcDepends, ...]:
    expected = "an array of [domain, [service, ...]] pairs"
    items = t.array("svc_depends", expected=expected)
    if len(items) == 2 and isinstance(items[0], str) and isinstance(items[1], list):
        t.fail("svc_depends", f"expected {expected}; got one bare pair: wrap it in [ ]")
    deps: list[SvcDepends] = []
    # Every pair is kept: ssl-mgr 4.x kept only the last one, silently dropping the rest.
    for i, item in enumerate(items):
        key = f"svc_depends[{i}]"
        if not (isinstance(item, list) and len(item) == 2):
            t.fail(key, f"expected a [domain, [service, ...]] pair, got {_show(item)}")
        domain, services = item
        if not isinstance(domain, str):
            t.fail(key, f"domain: expected a string, got {describe(domain)}")
        if domain.lower() in _ANY_DOMAIN:
            domain = "any"
        elif domain != CA_GROUP:
            problem = dns_name_problem(domain)
            if problem:
                t.fail(key, f"domain {domain!r}: {problem}; expected a group domain or 'any'")
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            t.fail(key, f"services: expected an array of service names, got {_show(services)}")
        if not services:
            t.fail(key, "services: the list is empty")
        deps.append(SvcDepends(domain=domain, services=tuple(str(s) for s in services)))
    return tuple(deps)


def _show(value: object) -> str:
    return repr(value) if isinstance(value, list) else describe(value)


# -- ca-info.conf -----------------------------------------------------------------------------


def _parse_ca_info(file: Path, raw: Mapping[str, object], base: Path) -> dict[str, CaInfo]:
    cas: dict[str, CaInfo] = {}
    for name, value in raw.items():
        if not isinstance(value, dict):
            hint = " (CA keys go under a [ca-name] header)" if name in _CA_KEYS else ""
            raise ConfigError(
                file,
                name,
                f"expected a table [{name}] describing one CA, got {describe(value)}{hint}",
            )
        problem = plain_name_problem(name)
        if problem:
            raise ConfigError(file, name, f"bad CA name {name!r}: {problem}")
        if name == SELF_SIGNED:
            raise ConfigError(file, name, f"{SELF_SIGNED!r} is reserved for self-signed roots")
        t = Table(file, name, value, _CA_KEYS)
        ca_type = _CA_TYPES[t.choice("ca_type", tuple(_CA_TYPES))]
        validation: Validation | None = None
        if ca_type == "certbot" or t.has("ca_validation"):
            validation = _VALIDATIONS[t.choice("ca_validation", tuple(_VALIDATIONS))]
        server = t.opt_string("ca_server")
        if server is not None:
            url = urlsplit(server)
            if url.scheme not in ("https", "http") or not url.hostname:
                t.fail("ca_server", f"expected an http(s) URL of an ACME directory, got {server!r}")
        cas[name] = CaInfo(
            name=name,
            desc=t.string("ca_desc", ""),
            ca_type=ca_type,
            validation=validation,
            server=server,
            trust=t.path_value("ca_trust", base),
            preferred_chain=t.opt_string("ca_preferred_chain"),
            profile=t.opt_string("ca_profile"),
        )
    return cas


# -- <group>/<service> ------------------------------------------------------------------------


def _parse_service(
    file: Path, raw: Mapping[str, object], group: str, service: str, cas: Mapping[str, CaInfo]
) -> Service:
    top = Table(
        file,
        "",
        raw,
        (*_SVC_TOP_KEYS, *_SVC_SECTIONS),
        elsewhere=_placements(
            ("[KeyOpts]", _KEYOPT_KEYS),
            ("[X509]", _X509_KEYS),
            ("[CA]", _CAOPT_KEYS),
            ("[globals] of ssl-mgr.conf", _GLOBAL_KEYS),
        ),
    )
    for key, expected in (("group", group), ("service", service)):
        if top.has(key):
            value = top.string(key)
            if value != expected:
                top.fail(
                    key,
                    f"says {value!r} but the file is {group}/{service}: "
                    f"expected {key} = {expected!r}",
                )

    signing_ca = top.string("signing_ca", non_empty=True)
    self_signed = signing_ca in (SELF_SIGNED, service)
    if not self_signed and signing_ca not in cas:
        known = ", ".join(sorted(cas)) or "none"
        top.fail(
            "signing_ca",
            f"unknown CA {signing_ca!r}: expected '{SELF_SIGNED}' or a CA of ca-info.conf "
            f"({known})" + did_you_mean(signing_ca, [*cas, SELF_SIGNED]),
        )

    key_opts = _parse_key_opts(file, top.table("KeyOpts"))
    x509 = _parse_x509(file, top.table("X509"))
    ca_opts = _parse_ca_opts(file, top.table("CA"))

    svc = Service(
        group=group,
        service=service,
        name=top.string("name", service),
        signing_ca=signing_ca,
        file=file,
        renew_expire_days=top.number("renew_expire_days", positive=True),
        dane_tls=_parse_dane(top),
        dane_tls_ttl=top.integer("dane_tls_ttl", 1800, lo=1, hi=_MAX_TTL),
        key=key_opts,
        x509=x509,
        ca=ca_opts,
    )
    if self_signed:
        if ca_opts is None:
            top.fail(
                "signing_ca",
                f"a self-signed service (signing_ca = {signing_ca!r}) is a root CA and needs a "
                "[CA] section with sign_end_days",
            )
    elif cas[signing_ca].ca_type == "certbot":
        _check_acme_service(top, svc, cas[signing_ca])
    return svc


def _parse_key_opts(file: Path, raw: Mapping[str, object] | None) -> KeyOpts:
    if raw is None:
        return KeyOpts()
    t = Table(
        file,
        "KeyOpts",
        raw,
        _KEYOPT_KEYS,
        elsewhere=_placements(
            (_TOP_LEVEL_TEXT, _SVC_TOP_KEYS), ("[X509]", _X509_KEYS), ("[CA]", _CAOPT_KEYS)
        ),
    )
    if t.has("rsa_bits") and t.has("bits"):
        t.fail("bits", "set rsa_bits or its alias bits, not both")
    bits_key = "bits" if t.has("bits") else "rsa_bits"
    bits = t.integer(bits_key, 4096, lo=_RSA_BITS[0], hi=_RSA_BITS[1])
    return KeyOpts(
        ktype=_KEY_TYPES[t.choice("ktype", tuple(_KEY_TYPES), "ec")],
        ec_algo=t.choice("ec_algo", _EC_CURVES, "secp384r1"),
        rsa_bits=bits,
    )


def _parse_x509(file: Path, raw: Mapping[str, object] | None) -> X509Name:
    if raw is None:
        return X509Name()
    t = Table(
        file,
        "X509",
        raw,
        _X509_KEYS,
        elsewhere=_placements(
            (_TOP_LEVEL_TEXT, _SVC_TOP_KEYS), ("[KeyOpts]", _KEYOPT_KEYS), ("[CA]", _CAOPT_KEYS)
        ),
    )
    country = t.string("C", "")
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
        t.fail("C", f"expected a 2-letter country code or '', got {country!r}")
    email = t.string("email", "")
    if email:
        local, at, domain = email.rpartition("@")
        if not at or not local or any(c.isspace() for c in email) or dns_name_problem(domain):
            t.fail(
                "email", f"expected an e-mail address like hostmaster@example.com, got {email!r}"
            )
    sans = t.string_list("sans")
    seen: dict[str, int] = {}
    for i, san in enumerate(sans):
        problem = host_problem(san, allow_wildcard=True)
        if problem:
            t.fail(
                f"sans[{i}]", f"{san!r} is not a DNS name ('*.' wildcard allowed) or IP: {problem}"
            )
        folded = san.lower()
        if folded in seen:
            t.fail(f"sans[{i}]", f"{san!r} repeats sans[{seen[folded]}]")
        seen[folded] = i
    return X509Name(
        CN=t.string("CN", ""),
        O=t.string("O", ""),
        OU=t.string("OU", ""),
        L=t.string("L", ""),
        ST=t.string("ST", ""),
        C=country,
        email=email,
        sans=tuple(sans),
    )


def _parse_ca_opts(file: Path, raw: Mapping[str, object] | None) -> CaOpts | None:
    if raw is None:
        return None
    t = Table(
        file,
        "CA",
        raw,
        _CAOPT_KEYS,
        elsewhere=_placements(
            (_TOP_LEVEL_TEXT, _SVC_TOP_KEYS), ("[KeyOpts]", _KEYOPT_KEYS), ("[X509]", _X509_KEYS)
        ),
    )
    if not t.has("sign_end_days"):
        t.fail("sign_end_days", "required in [CA]: days a certificate this CA signs stays valid")
    return CaOpts(
        sign_end_days=t.integer("sign_end_days", lo=1),
        digest=t.choice("digest", _DIGESTS, "sha384"),
    )


def _parse_dane(top: Table) -> tuple[DaneTls, ...]:
    items = top.array("dane_tls", expected="an array of [port, proto, usage, selector, match]")
    if items and not isinstance(items[0], list):
        top.fail(
            "dane_tls", f"expected an array of entries like [[25, 'tcp', 3, 1, 1]], got {items!r}"
        )
    out: list[DaneTls] = []
    for i, item in enumerate(items):
        key = top.path(f"dane_tls[{i}]")
        if not isinstance(item, list) or len(item) not in (5, 6):
            raise ConfigError(
                top.file,
                key,
                "expected [port, proto, usage, selector, match] with an optional 6th "
                f"'MX' or 'SANS', got {_show(item)}",
            )
        port = _dane_int(top.file, key, "port", item[0], 1, 65535)
        proto = item[1]
        if proto not in _DANE_PROTOS:
            raise ConfigError(
                top.file, key, f"proto: expected one of {', '.join(_DANE_PROTOS)}, got {proto!r}"
            )
        usage = _dane_int(top.file, key, "usage", item[2], 0, 3)
        selector = _dane_int(top.file, key, "selector", item[3], 0, 1)
        match = _dane_int(top.file, key, "match", item[4], 0, 2)
        placement: str | None = None
        if len(item) == 6:
            if item[5] not in _DANE_PLACEMENTS:
                raise ConfigError(
                    top.file, key, f"6th field: expected 'MX' or 'SANS', got {item[5]!r}"
                )
            placement = str(item[5])
        out.append(DaneTls(port, str(proto), usage, selector, match, placement))
    return tuple(out)


def _dane_int(file: Path, key: str, field: str, value: object, lo: int, hi: int) -> int:
    try:
        return check_int(file, key, value, lo=lo, hi=hi)
    except ConfigError as exc:
        raise ConfigError(file, key, f"{field}: {exc.reason}") from None


def _check_acme_service(top: Table, svc: Service, ca: CaInfo) -> None:
    if svc.ca is not None:
        top.fail(
            "CA",
            f"an ACME CA ({ca.name!r}, certbot) does not issue CA certificates: "
            "sign this CA with 'self' or a local CA, or drop [CA]",
        )
    if not svc.names:
        top.fail(
            "X509.sans",
            f"signed by ACME CA {ca.name!r}: needs at least one name in X509.sans (or X509.CN)",
        )
    if not svc.x509.sans:
        problem = host_problem(svc.x509.CN)
        if problem:
            top.fail("X509.CN", f"used as the only name for ACME CA {ca.name!r}: {problem}")
    if ca.validation == "http-01":
        for i, san in enumerate(svc.x509.sans):
            if san.startswith("*."):
                top.fail(
                    f"X509.sans[{i}]",
                    f"wildcard {san!r} cannot be validated by http-01 (CA {ca.name!r}); "
                    "use a dns-01 CA",
                )


# -- cross-file checks ------------------------------------------------------------------------


def _check_svc_depends(file: Path, inv: Inventory) -> None:
    by_domain = {g.domain: g for g in inv.groups}
    all_services = {svc for g in inv.groups for svc in g.services}
    for name, server in inv.servers.items():
        for i, dep in enumerate(server.svc_depends):
            key = f"{name}.svc_depends[{i}]"
            if dep.domain == "any":
                known: Iterable[str] = all_services
                where = "any group"
            elif dep.domain in by_domain:
                known = by_domain[dep.domain].services
                where = f"group {dep.domain!r}"
            else:
                raise ConfigError(
                    file,
                    key,
                    f"domain {dep.domain!r} is not a [[groups]] domain"
                    + did_you_mean(dep.domain, list(by_domain)),
                )
            known = tuple(known)
            for svc in dep.services:
                if svc not in known:
                    raise ConfigError(
                        file,
                        key,
                        f"service {svc!r} is not listed in {where}" + did_you_mean(svc, known),
                    )


def _check_local_signers(inv: Inventory) -> None:
    """A service signed by one of our CAs needs that CA's service, holding a [CA] section."""
    for svc in inv.services.values():
        if svc.is_self_signed:
            continue
        ca = inv.cas[svc.signing_ca]
        if ca.ca_type == "certbot":
            continue
        holder = inv.ca_service(ca.name)
        if holder is None:
            raise ConfigError(
                svc.file,
                "signing_ca",
                f"CA {ca.name!r} is a {ca.ca_type!r} CA but no service holds its key and cert: "
                f"expected a service file {CA_GROUP}/{ca.name} listed in the [[groups]] "
                f"entry with domain = '{CA_GROUP}' of {SSL_MGR_CONF}",
            )
        if holder.ca is None:
            raise ConfigError(
                svc.file,
                "signing_ca",
                f"CA {ca.name!r} is held by {holder.file}, which has no [CA] section "
                "(sign_end_days, digest): it cannot sign",
            )


def _check_ca_chains(inv: Inventory) -> None:
    """Every local CA chain must end at a self-signed root."""
    for start, info in inv.cas.items():
        if info.ca_type == "certbot":
            continue
        chain = [start]
        current = start
        while True:
            holder = inv.ca_service(current)
            if holder is None or holder.is_self_signed:
                break
            parent = holder.signing_ca
            parent_ca = inv.cas.get(parent)
            if parent_ca is None or parent_ca.ca_type == "certbot":
                break
            if parent in chain:
                cycle = " -> ".join([*chain[chain.index(parent) :], parent])
                raise ConfigError(
                    holder.file,
                    "signing_ca",
                    f"CA signing chain has a cycle: {cycle}; a chain must end at a root "
                    f"with signing_ca = '{SELF_SIGNED}'",
                )
            chain.append(parent)
            current = parent
