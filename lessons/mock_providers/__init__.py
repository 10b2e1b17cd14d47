"""Fake OpenAI and Anthropic HTTP APIs with a Python control API: timing, faults, observations."""

from lessons.mock_providers.anthropic_messages import ANTHROPIC_ORGANIZATION
from lessons.mock_providers.control import PERTURB_ENV, MockProviders
from lessons.mock_providers.faults import Fault, Rule
from lessons.mock_providers.observed import ObservedRequest
from lessons.mock_providers.openai_common import OPENAI_ORGANIZATION, OPENAI_PROJECT
from lessons.mock_providers.replies import CANNED_REPLIES

__all__ = [
    "ANTHROPIC_ORGANIZATION",
    "CANNED_REPLIES",
    "OPENAI_ORGANIZATION",
    "OPENAI_PROJECT",
    "PERTURB_ENV",
    "Fault",
    "MockProviders",
    "ObservedRequest",
    "Rule",
]
