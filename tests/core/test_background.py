"""Background work: to the broker when there is one; without one, on a thread of the
process after the request answers (never inside it); in place in the test suite."""

import threading
from unittest import mock

from tagportal.core import background
from tagportal.engine import tasks


class Blocked:
    """A task's ``apply`` that waits until released, recording where it ran."""

    def __init__(self):
        self.release, self.calls = threading.Event(), []

    def __call__(self, args=(), kwargs=None, **options):
        self.release.wait(10)
        self.calls.append((threading.current_thread().name, args, kwargs))

    def finish(self, name: str):
        self.release.set()
        for thread in threading.enumerate():
            if thread.name == name:
                thread.join(10)


def test_with_a_broker_the_task_goes_to_its_queue(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(tasks.compute_brand_task, "apply_async") as sent:
        background.send(tasks.compute_brand_task, 7, 3, tag_ids=[1], queue="compute")
    sent.assert_called_once_with(args=(7, 3), kwargs={"tag_ids": [1]}, queue="compute")
    assert background.runs_in_thread() is False


def test_the_test_suite_runs_tasks_in_place(settings):
    assert settings.CELERY_TASK_ALWAYS_EAGER and not background.runs_in_thread()
