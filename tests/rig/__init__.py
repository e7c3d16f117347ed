"""Test rig: real named (BIND9), pebble and an http-01 responder on free loopback ports.

Every process runs in its own process group and is stopped (signal the group, wait) by
``stop()`` / the context managers / the fixtures in :mod:`tests.rig.fixtures`, also when a
test fails. ``tests/rig/dns-refresh`` is the ``--serial_bump`` DNS restart script.
"""

from tests.rig.acme_rig import DEFAULT_APEXES, REFRESH_SCRIPT, AcmeRig, RigPorts
from tests.rig.bind import Bind, ZoneSpec, render_zone_template
from tests.rig.certbot import CertbotRun, certbot_path, certonly_argv, run_certonly
from tests.rig.http_root import HttpRoot, ServedRequest, apex_for
from tests.rig.pebble import Pebble, write_api_certificate
from tests.rig.process import (
    LOOPBACK,
    ManagedProcess,
    RigError,
    free_port,
    pid_running,
    port_is_free,
)

__all__ = [
    "DEFAULT_APEXES",
    "LOOPBACK",
    "REFRESH_SCRIPT",
    "AcmeRig",
    "Bind",
    "CertbotRun",
    "HttpRoot",
    "ManagedProcess",
    "Pebble",
    "RigError",
    "RigPorts",
    "ServedRequest",
    "ZoneSpec",
    "apex_for",
    "certbot_path",
    "certonly_argv",
    "free_port",
    "pid_running",
    "port_is_free",
    "render_zone_template",
    "run_certonly",
    "write_api_certificate",
]
