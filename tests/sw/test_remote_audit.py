"""The card server's audit log and ``t2t audit``, without a card."""

import json

import pytest

from t2t.cli.main import main
from t2t.server.audit import AuditLog, AuditLogError, read_audit


def test_entries_are_appended_as_json_lines_and_read_back_in_order(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("alice", "trader", "write", "id.scratch", 5, 0, 5)
    log.close()
    log = AuditLog(path)  # a restarted server appends, never truncates
    log.record("rita", "risk", "commit", "control.commit", 1, None, None, groups=["feed"])
    log.close()
    entries = read_audit(path)
    assert [(e["user"], e["op"], e["before"], e["after"]) for e in entries] == [
        ("alice", "write", 0, 5), ("rita", "commit", None, None)]
    assert entries[1]["groups"] == ["feed"] and entries[0]["time"].endswith("+00:00")


def test_a_corrupt_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps({"user": "a"}) + "\n{oops\n")
    with pytest.raises(AuditLogError, match="audit.jsonl:2"):
        read_audit(path)


def test_audit_prints_a_table_or_json(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record("alice", "trader", "write", "feed.dst_port_a", 1000, 26477, 1000)
    log.close()
    assert main(["audit", "--log", str(path)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[1:] == ["alice", "trader", "write", "feed.dst_port_a", "0x03e8", "0x676d", "0x03e8"]
    assert main(["--json", "audit", "--log", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["after"] == 1000


def test_audit_without_a_log_is_a_usage_error(tmp_path, capsys):
    assert main(["audit", "--log", str(tmp_path / "none.jsonl")]) == 2
    assert "no audit log" in capsys.readouterr().err
