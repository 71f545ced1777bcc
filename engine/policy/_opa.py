"""The OPA-server backend: the same bundle, evaluated by an OPA server over its v1 REST API
(`opa-python-client`), for fleets that outgrow one process.

On construction the bundle's modules and data are uploaded (policies under ``slmgate/``, data
under ``data.slmgate``) and read back to confirm the server holds exactly them; every query asks
for strict built-in errors. An unreachable server, an HTTP error, or an undefined result is a
``PolicyError`` — a denial, as with the embedded engine.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from slmgate.engine.policy._bundle import PolicyBundle
from slmgate.engine.policy._embedded import ENTRYPOINT
from slmgate.evidence.errors import InputError, PolicyError


class OpaServerPolicy:
    """Evaluates ``data.slmgate.promotion.decision`` on an OPA server at ``url``."""

    def __init__(self, bundle: PolicyBundle, url: str, *, timeout: float = 10.0) -> None:
        import requests
        from opa_client import OpaClient
        from opa_client.errors import ConnectionsError, PolicyNotFoundError, RegoParseError

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--opa-url must be http(s)://HOST:PORT, got {url!r}")
        self.url = url
        self._client = OpaClient(host=parts.hostname, port=parts.port or 8181,
                                 ssl=parts.scheme == "https", timeout=timeout, retries=0)
        self._errors: tuple[type[BaseException], ...] = (
            requests.RequestException, ConnectionsError, PolicyNotFoundError, RegoParseError,
            ValueError)
        self.entrypoint = ENTRYPOINT
        try:
            for name, data in sorted(bundle.data.items()):
                self._client.update_or_create_data(data, f"slmgate/{name}")
            for name, source in sorted(bundle.rego_modules.items()):
                policy_id = f"slmgate/{name}"
                self._client.update_policy_from_string(source, policy_id, rego_compat=False)
                held = self._client.get_policy(policy_id).get("result", {}).get("raw")
                if held != source:
                    raise PolicyError(f"OPA server at {url} does not hold {name} as uploaded")
        except self._errors as exc:
            raise PolicyError(f"cannot load the bundle into the OPA server at {url}: {exc}") from exc

    def evaluate(self, facts: dict[str, Any]) -> dict[str, Any]:
        package, rule = self.entrypoint.rsplit("/", 1)
        try:
            response = self._client.query_rule(
                input_data=facts, package_path=package.replace("/", "."), rule_name=rule,
                query_params={"strict-builtin-errors": "true"})
        except self._errors as exc:
            raise PolicyError(f"OPA server at {self.url} failed to evaluate: {exc}") from exc
        if "result" not in response:
            raise PolicyError(f"{self.entrypoint} is undefined for these facts (OPA at {self.url})")
        result = response["result"]
        if not isinstance(result, dict):
            raise PolicyError(f"{self.entrypoint} must be one object, got {type(result).__name__}")
        return result
