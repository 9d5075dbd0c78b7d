"""The world a test module shares (tests/conftest.py): made once for the module, read
again for each test, and what a test writes is gone before the next one."""

from pathlib import Path

import pytest
from django.db import connection

from tagportal.catalog.models import Tag

from .conftest import _SHARED_WORLD, World

pytestmark = pytest.mark.django_db


def test_the_module_shares_one_world_read_again_for_each_test(world, world_of_module):
    assert Path(__file__) in _SHARED_WORLD
    assert world.references() == world_of_module
    again = World.read(world_of_module)
    assert again.own_tag == world.own_tag and again.own_tag is not world.own_tag
    assert connection.in_atomic_block  # the test runs in a savepoint of the module's transaction


def test_a_test_writes_to_the_world(world):
    world.own_tag.name = "改过的名字"
    world.own_tag.save()
    Tag.objects.filter(pk=world.other_tag.pk).delete()
    assert Tag.objects.filter(name="改过的名字").count() == 1


def test_the_next_test_finds_the_world_as_it_was_made(world):
    assert world.own_tag.name == "到店次数"
    assert Tag.objects.filter(name="改过的名字").count() == 0
    assert Tag.objects.filter(pk=world.other_tag.pk).exists()
