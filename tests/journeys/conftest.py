"""The journeys' tests drive the channels' fake platforms: the activation tests' fixtures."""

from tests.activation.conftest import (  # noqa: F401  (fixtures)
    fresh_windows_and_tokens,
    platform,
    sleeps,
    wechat_platform,
)
