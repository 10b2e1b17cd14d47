"""Wrong answers to notebook 05's exercises: each must be reported "not yet"."""

WRONG_ANSWERS = {
    "reasoning_deadlines": [
        # The defaults: keep-alives every 5 s (the balancer cuts at 4), 30 s for the first token.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings()
""",
        # The silence limit stretched to cover the thinking: the first token has its own phase.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=3.0, idle_timeout_s=50.0, total_timeout_s=900.0,
                         send_timeout_s=8.0)
""",
        # Right, but the default cap on a whole reply (300 s) cuts a ten-minute reply.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=3.0, first_token_timeout_s=60.0,
                         idle_timeout_s=12.0, send_timeout_s=8.0)
""",
        # No real cap on a whole reply.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=3.0, first_token_timeout_s=60.0,
                         idle_timeout_s=12.0, total_timeout_s=1e9, send_timeout_s=8.0)
""",
        # The first token may take for ever.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=3.0, first_token_timeout_s=600.0,
                         idle_timeout_s=12.0, total_timeout_s=900.0, send_timeout_s=8.0)
""",
        # A frozen reader holds its slot for the default 10 s.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=3.0, first_token_timeout_s=60.0,
                         idle_timeout_s=12.0, total_timeout_s=900.0)
""",
        # A keep-alive exactly at the balancer's limit is too late.
        """
from lessons.relay_core import RelaySettings
def reasoning_relay_settings():
    return RelaySettings(keepalive_interval_s=4.0, first_token_timeout_s=60.0,
                         idle_timeout_s=12.0, total_timeout_s=900.0, send_timeout_s=8.0)
""",
    ],
    "retry_after_leaving": [
        # Reads the mock at once, before the retry could have arrived.
        """
import httpx
from lessons.mock_providers import Fault
def retry_was_cancelled(url, mock):
    mock.script(Fault.http_error(429, retry_after=0.5, should_retry=True))
    try:
        httpx.post(url + "/chat/stream", json={"message": "What is machine learning?"},
                   timeout=0.2)
    except httpx.TimeoutException:
        pass
    return len(mock.requests) == 1
""",
        # Never leaves: waits for the whole answer, so the SDK's retry is the reply.
        """
import httpx
from lessons.mock_providers import Fault
def retry_was_cancelled(url, mock):
    mock.script(Fault.http_error(429, retry_after=0.5, should_retry=True))
    httpx.post(url + "/chat/stream", json={"message": "What is machine learning?"}, timeout=10)
    return len(mock.requests) == 1
""",
        # Judges from the client's side: it left, so "cancelled".
        """
import httpx
from lessons.mock_providers import Fault
def retry_was_cancelled(url, mock):
    mock.script(Fault.http_error(429, retry_after=0.5, should_retry=True))
    try:
        httpx.post(url + "/chat/stream", json={"message": "What is machine learning?"},
                   timeout=0.2)
    except httpx.TimeoutException:
        return True
    return False
""",
    ],
    "budgets_per_worker": [
        # Closes each stream before opening the next: never more than one open at once.
        """
import httpx
def streams_at_once(urls, token):
    opened = 0
    with httpx.Client(timeout=5) as client:
        for url in urls:
            for _ in range(20):
                with client.stream("POST", url + "/chat/stream",
                                   json={"message": "What is machine learning?"},
                                   headers={"Authorization": "Bearer " + token}) as response:
                    if response.status_code != 200:
                        break
                    opened += 1
    return opened
""",
        # Measures the first server only.
        """
import httpx
def streams_at_once(urls, token):
    held = []
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            request = client.build_request("POST", urls[0] + "/chat/stream",
                                           json={"message": "What is machine learning?"},
                                           headers={"Authorization": "Bearer " + token})
            response = client.send(request, stream=True)
            if response.status_code != 200:
                response.close()
                break
            held.append(response)
        for response in held:
            response.close()
    return len(held)
""",
        # Counts the refused request too.
        """
import httpx
def streams_at_once(urls, token):
    held = []
    with httpx.Client(timeout=5) as client:
        for url in urls:
            for _ in range(20):
                request = client.build_request("POST", url + "/chat/stream",
                                               json={"message": "What is machine learning?"},
                                               headers={"Authorization": "Bearer " + token})
                response = client.send(request, stream=True)
                held.append(response)
                if response.status_code != 200:
                    break
        for response in held:
            response.close()
    return len(held)
""",
    ],
}
