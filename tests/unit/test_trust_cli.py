"""``gateway keys``, ``gateway sign`` and ``gateway verify`` end to end on a small directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from trustkit import DIRECTORY_CSV, OTHER, SENDER, SUSPENDED, document_from

from gateway.cli import main
from gateway.envelope import build_package
from gateway.trust import KeysLayout, fingerprint, load_unit_signer


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GATEWAY_KEYS", "GATEWAY_TRUST", "GATEWAY_CRL", "GATEWAY_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "units.csv").write_text(DIRECTORY_CSV.format(pin=""), encoding="utf-8")
    code, out = run(
        "keys", "init", "--out", str(tmp_path / "keys"), "--directory", str(tmp_path / "units.csv")
    )
    assert code == 0, out
    for unit in (SENDER, OTHER, SUSPENDED):
        (tmp_path / f"{unit}.edxml").write_bytes(build_package(document_from(unit)))
    return tmp_path


def sign(env: Path, unit: str, *extra: str) -> Path:
    out = env / f"{unit}.signed.edxml"
    code, output = run(
        "sign",
        "--keys",
        str(env / "keys"),
        "--unit",
        unit,
        str(env / f"{unit}.edxml"),
        "-o",
        str(out),
        *extra,
    )
    assert code == 0, output
    return out


def verify(env: Path, *args: str) -> tuple[int, str]:
    return run("verify", "--keys", str(env / "keys"), "--directory", str(env / "units.csv"), *args)


def test_keys_init_reports_what_it_created(env: Path) -> None:
    code, out = run(
        "keys",
        "init",
        "--out",
        str(env / "more"),
        "--directory",
        str(env / "units.csv"),
        "--algorithm",
        "ec",
    )
    assert code == 0
    assert "Created a development PKI (EC) for 6 units" in out
    assert str(env / "more" / "trust.pem") in out


def test_keys_init_refuses_to_overwrite_and_force_replaces(env: Path) -> None:
    args = ("keys", "init", "--out", str(env / "keys"), "--directory", str(env / "units.csv"))
    code, out = run(*args)
    assert code == 2 and "--force" in out
    code, _ = run(*args, "--force")
    assert code == 0


def test_sign_then_verify_prints_valid_with_signer_and_fingerprint(env: Path) -> None:
    signed = sign(env, SENDER)
    cert = load_unit_signer(env / "keys", SENDER)[1]
    code, out = verify(env, str(signed))
    assert code == 0
    assert out.strip() == f"VALID {signed} signer={SENDER} cert={fingerprint(cert)}"


def test_sign_with_key_and_cert_files(env: Path) -> None:
    layout = KeysLayout(env / "keys")
    out = env / "out.edxml"
    code, _ = run(
        "sign",
        "--key",
        str(layout.unit_key(OTHER)),
        "--cert",
        str(layout.unit_cert(OTHER)),
        str(env / f"{OTHER}.edxml"),
        "-o",
        str(out),
    )
    assert code == 0
    assert verify(env, str(out))[0] == 0


def test_sign_needs_one_way_to_name_the_signer(env: Path) -> None:
    code, out = run(
        "sign", "--keys", str(env / "keys"), str(env / f"{SENDER}.edxml"), "-o", str(env / "x")
    )
    assert code == 2 and "--unit" in out


def test_sign_refuses_a_signed_package_with_exit_1(env: Path) -> None:
    signed = sign(env, SENDER)
    code, out = run(
        "sign", "--keys", str(env / "keys"), "--unit", SENDER, str(signed), "-o", str(env / "x")
    )
    assert code == 1 and "signature_ambiguous" in out


def test_verify_prints_invalid_with_code_and_exits_1(env: Path) -> None:
    good = sign(env, SENDER)
    tampered = env / "tampered.edxml"
    tampered.write_bytes(good.read_bytes().replace(b"125/SNV-VP", b"126/SNV-VP", 1))
    code, out = verify(env, str(good), str(tampered))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"VALID {good} ")
    assert lines[1].startswith(f"INVALID {tampered} signature_invalid: ")


def test_verify_suspended_sender_and_revoked_certificate(env: Path) -> None:
    code, out = verify(env, str(sign(env, SUSPENDED)))
    assert code == 1 and "sender_suspended" in out
    signed = sign(env, SENDER)
    code, out = run(
        "keys", "revoke", "--keys", str(env / "keys"), "--reason", "key-compromise", SENDER
    )
    assert code == 0 and "revoked" in out
    code, out = verify(env, str(signed))
    assert code == 1 and f"INVALID {signed} cert_revoked:" in out


def test_verify_compat_shows_the_recorded_state(env: Path) -> None:
    unsigned = env / f"{SENDER}.edxml"
    code, out = verify(env, "--profile", "compat", str(unsigned))
    assert code == 0
    assert out.strip() == f"VALID {unsigned} signer=- cert=- state=absent problem=signature_missing"
    code, out = verify(env, str(unsigned))
    assert code == 1 and "signature_missing" in out


def test_verify_json(env: Path) -> None:
    signed = sign(env, SENDER)
    code, out = verify(env, "--json", str(signed))
    assert code == 0
    [result] = json.loads(out)
    assert result["valid"] is True and result["signature_state"] == "valid"
    assert result["signer"] == SENDER and result["from"] == SENDER
    assert len(result["cert_sha256"]) == 64


def test_verify_with_trust_and_crl_files(env: Path) -> None:
    signed = sign(env, SENDER)
    layout = KeysLayout(env / "keys")
    code, _ = run(
        "verify",
        "--trust",
        str(layout.trust_pem),
        "--crl",
        str(layout.crl_pem),
        "--directory",
        str(env / "units.csv"),
        str(signed),
    )
    assert code == 0


def test_verify_without_trust_is_a_usage_error(env: Path) -> None:
    code, out = run("verify", "--directory", str(env / "units.csv"), str(env / f"{SENDER}.edxml"))
    assert code == 2 and "--keys" in out


def test_keys_rotate_and_crl(env: Path) -> None:
    before = load_unit_signer(env / "keys", SENDER)[1]
    code, out = run("keys", "rotate", "--keys", str(env / "keys"), SENDER)
    assert code == 0 and f"the old one {before.serial_number:x} stays valid" in out
    assert load_unit_signer(env / "keys", SENDER)[1] != before
    code, out = run(
        "keys",
        "revoke",
        "--keys",
        str(env / "keys"),
        "--serial",
        f"{before.serial_number:x}",
        SENDER,
    )
    assert code == 0 and f"{before.serial_number:x}" in out
    code, out = run("keys", "crl", "--keys", str(env / "keys"))
    assert code == 0 and "CRL re-issued with 1 entries" in out


def test_keys_commands_on_a_missing_folder_exit_2(tmp_path: Path) -> None:
    code, out = run("keys", "revoke", "--keys", str(tmp_path / "none"), SENDER)
    assert code == 2 and "gateway keys init" in out
