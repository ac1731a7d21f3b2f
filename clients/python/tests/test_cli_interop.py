"""The client and the `stemedb` command agree: key files `stemedb keygen` writes load here,
records signed here pass `stemedb verify`, and records `stemedb sign` prints verify here."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import _binary

from stemedb import AgentKey, Assertion, SignatureError, StemeError, Vote, obj


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([_binary(), *args], input=stdin, capture_output=True, text=True, timeout=60)


def test_keygen_files_load_and_sign_what_the_cli_verifies(tmp_path):
    path = tmp_path / "alice.key"
    made = _run("keygen", "--out", str(path))
    assert made.returncode == 0, made.stderr
    key = AgentKey.load(path)
    assert key.agent in made.stdout + made.stderr
    claim = Assertion("city/paris", "motto", obj("Fluctuat nec mergitur ✓"), 0.9).sign(key)
    checked = _run("verify", stdin=json.dumps(claim.to_json()))
    assert checked.returncode == 0, checked.stderr
    assert claim.content_hash() in checked.stdout
    vote = Vote.sign(key, claim.content_hash(), 2.5)
    assert _run("verify", stdin=json.dumps(vote.to_json())).returncode == 0
    # Tampered after signing: the command refuses it.
    claim.confidence = 0.5
    assert _run("verify", stdin=json.dumps(claim.to_json())).returncode == 1


def test_cli_signed_records_verify_here(tmp_path):
    path = tmp_path / "bob.key"
    assert _run("keygen", "--out", str(path)).returncode == 0
    printed = _run(
        "sign",
        "assertion",
        "--key",
        str(path),
        "--subject",
        "s",
        "--predicate",
        "p",
        "--float",
        "-0.0",
        "--confidence",
        "0.1",
    )
    assert printed.returncode == 0, printed.stderr
    claim = Assertion.from_json(json.loads(printed.stdout))
    claim.verify()
    claim.object = {"float": 0.0}
    with pytest.raises(SignatureError):
        claim.verify()


def test_key_files_open_to_others_are_refused(tmp_path):
    path = tmp_path / "k.key"
    AgentKey.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(StemeError):
        AgentKey.load(path)
    os.chmod(path, 0o600)
    assert AgentKey.load(path).agent
    with pytest.raises(FileExistsError):
        AgentKey.generate().save(path)
