"""Secrets at rest: encrypted with the configured keys, rotated, never shown back."""

import pytest
from cryptography.fernet import Fernet
from django import forms
from django.db import connection, models

from tagportal.core import secrets


def test_encrypt_round_trips_chinese_and_hides_the_text():
    stored = secrets.encrypt("企业微信-secret-密钥")
    assert stored.startswith(secrets.PREFIX)
    assert "secret" not in stored and "密钥" not in stored
    assert secrets.decrypt(stored) == "企业微信-secret-密钥"
    assert secrets.encrypt("abc") != secrets.encrypt("abc")  # a fresh IV each time
    assert secrets.encrypt("") == "" and secrets.decrypt("") == ""


def test_configured_keys_rotate(settings):
    old, new = Fernet.generate_key().decode(), secrets.generate_key()
    settings.TAGPORTAL_SECRET_KEYS = old
    stored = secrets.encrypt("token")
    settings.TAGPORTAL_SECRET_KEYS = f"{new},{old}"
    assert secrets.decrypt(stored) == "token"  # an old key still decrypts
    rotated = secrets.rotate(stored)
    settings.TAGPORTAL_SECRET_KEYS = new
    assert secrets.decrypt(rotated) == "token"
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored)  # the retired key is gone


def test_the_derived_key_follows_secret_key_and_its_fallbacks(settings):
    settings.TAGPORTAL_SECRET_KEYS = ""
    settings.SECRET_KEY = "a" * 60
    stored = secrets.encrypt("x")
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "b" * 60, ["a" * 60]
    assert secrets.decrypt(stored) == "x"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored)


@pytest.mark.parametrize("stored", ["plain text", "enc1:not-a-token", "enc1:"])
def test_a_forged_or_plain_stored_value_is_refused(stored):
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored or "x")


def test_bad_configured_keys_are_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.TAGPORTAL_SECRET_KEYS = "too-short"
    with pytest.raises(ImproperlyConfigured):
        secrets.encrypt("x")


class SecretHolder(models.Model):
    secret = secrets.EncryptedTextField()

    class Meta:
        app_label = "core"
        managed = False
        db_table = "core_test_secret_holder"

    def __str__(self):
        return str(self.pk)


@pytest.fixture
def holder_table(db):
    key = "serial" if connection.vendor == "postgresql" else "integer"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE core_test_secret_holder (id {key} PRIMARY KEY, secret text NOT NULL)")
    yield  # the test's transaction is rolled back, the table with it


def test_the_field_stores_ciphertext_and_reads_plain_text(holder_table):
    obj = SecretHolder.objects.create(secret="corpsecret-123")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM core_test_secret_holder WHERE id = %s", [obj.pk])
        raw = cursor.fetchone()[0]
    assert raw.startswith(secrets.PREFIX) and "corpsecret" not in raw
    assert SecretHolder.objects.get(pk=obj.pk).secret == "corpsecret-123"
    assert "corpsecret" not in SecretHolder._meta.get_field("secret").value_to_string(obj)


def test_an_unreadable_stored_secret_reads_as_unset(holder_table, settings):
    obj = SecretHolder.objects.create(secret="s")
    settings.TAGPORTAL_SECRET_KEYS = secrets.generate_key()
    assert SecretHolder.objects.get(pk=obj.pk).secret == ""


def test_the_form_never_shows_the_secret_and_blank_keeps_it(holder_table):
    Form = forms.modelform_factory(SecretHolder, fields=["secret"])
    obj = SecretHolder.objects.create(secret="keep-me")
    html = str(Form(instance=obj)["secret"])
    assert 'type="password"' in html and "keep-me" not in html
    form = Form({"secret": ""}, instance=obj)
    assert form.is_valid(), form.errors
    form.save()
    assert SecretHolder.objects.get(pk=obj.pk).secret == "keep-me"
    form = Form({"secret": "new-one"}, instance=obj)
    assert form.is_valid()
    form.save()
    assert SecretHolder.objects.get(pk=obj.pk).secret == "new-one"
