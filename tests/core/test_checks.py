from io import StringIO

from django.core.management import call_command


def test_system_checks_pass():
    out = StringIO()
    call_command("check", fail_level="WARNING", stdout=out)
    assert "no issues" in out.getvalue()
