"""The engine's TLS rules as contexts: CAs from certs.d, kept while unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks.registry_transport import EngineRegistryRules
from tests.support.registry import _make_certificates

HOST = "registry.test:5000"


def _rules(tmp_path: Path) -> tuple[EngineRegistryRules, Path]:
    certs = tmp_path / "certs.d"
    (certs / HOST).mkdir(parents=True)
    return EngineRegistryRules(certs_dir=certs), certs / HOST


def _cas(context: object) -> int:
    return int(context.cert_store_stats()["x509_ca"])  # type: ignore[attr-defined]


def test_a_certs_d_ca_is_trusted_on_top_of_the_system_ones(tmp_path: Path) -> None:
    rules, directory = _rules(tmp_path)
    system = _cas(rules.tls(HOST, verify=True))
    ca, _, _ = _make_certificates(tmp_path / "tls", "registry.test")
    shutil.copy(ca, directory / "ca.crt")

    assert _cas(rules.tls(HOST, verify=True)) == system + 1


def test_a_context_is_kept_until_the_directory_changes(tmp_path: Path) -> None:
    rules, directory = _rules(tmp_path)
    first = rules.tls(HOST, verify=True)
    assert rules.tls(HOST, verify=True) is first

    ca, _, _ = _make_certificates(tmp_path / "tls", "registry.test")
    shutil.copy(ca, directory / "ca.crt")
    changed = rules.tls(HOST, verify=True)
    assert changed is not first
    (directory / "ca.crt").unlink()
    assert _cas(rules.tls(HOST, verify=True)) == _cas(first)


def test_an_unverified_context_loads_no_ca(tmp_path: Path) -> None:
    rules, directory = _rules(tmp_path)
    ca, _, _ = _make_certificates(tmp_path / "tls", "registry.test")
    shutil.copy(ca, directory / "ca.crt")

    context = rules.tls(HOST, verify=False)
    assert _cas(context) == 0
    assert not context.check_hostname
