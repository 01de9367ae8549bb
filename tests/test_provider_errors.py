"""providers/errors.py maps every HTTP-like status to a LiteLLM exception that keeps the status."""

from __future__ import annotations

import litellm
import pytest

from proxy_ext.providers.errors import provider_error


@pytest.mark.parametrize("status", [*range(400, 452), 499, *range(500, 512), 598, 599])
def test_every_status_maps_to_a_litellm_exception_with_that_status(status):
    error = provider_error("mini-agent", status, "went wrong", "mini-agent/x")
    assert type(error).__module__ == "litellm.exceptions"
    assert str(error).count("mini-agent: went wrong") == 1
    if status == 408:
        assert isinstance(error, litellm.Timeout)
    else:
        assert error.status_code == status


@pytest.mark.parametrize("status, kind", [(400, litellm.BadRequestError), (401, litellm.AuthenticationError),
                                          (403, litellm.PermissionDeniedError), (429, litellm.RateLimitError),
                                          (503, litellm.ServiceUnavailableError), (504, litellm.APIError), (409, litellm.APIError)])
def test_known_statuses_get_their_own_types(status, kind):
    assert isinstance(provider_error("p", status, "m", "model"), kind)
