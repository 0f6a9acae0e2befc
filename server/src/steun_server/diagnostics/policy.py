"""A device group's diagnostics policy merged over the catalogue's defaults: what a run sends to the agent.

The merged policy is explicit: every test's thresholds (defaults with the group's overrides), the expected
ports, the names the DNS test resolves and the Steun server's address (from the public URL). It is stored
with the run, so a run's results can always be read against the thresholds that applied, even after the
catalogue's defaults or the group's policy change.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

import msgspec
from steun_protocol.catalogue import Catalogue, policy_problems
from steun_protocol.diagnostics import Policy
from steun_protocol.diagnostics_console import MAX_INTERVAL, MIN_INTERVAL


def server_address(public_url: str) -> tuple[str | None, int]:
    """The host and port agents reach the server at, from its public URL (no host: not tested)."""
    parts = urllib.parse.urlsplit(public_url)
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443
    return host or None, port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def effective_policy(group_policy: Policy | None, *, catalogue: Catalogue, public_url: str) -> Policy:
    """``group_policy`` over the catalogue's defaults and the server's own address."""
    policy = group_policy or Policy()
    thresholds = {
        check.id: catalogue.thresholds(check.id, policy) for check in catalogue.checks if check.thresholds
    }
    host, port = server_address(public_url)
    server_host = policy.server_host or host
    server_port = policy.server_port if policy.server_host else port
    dns_names = list(policy.dns_names)
    if not dns_names:
        # the agent's own rule made explicit: the server's name, else the catalogue's default names
        if server_host and not _is_ip(server_host):
            dns_names = [server_host]
        else:
            dns_names = list(catalogue.policy_defaults.dns_names)
    expected_ports = (
        list(policy.expected_ports)
        if policy.expected_ports is not None
        else list(catalogue.policy_defaults.expected_ports)
    )
    return msgspec.structs.replace(
        policy,
        thresholds=thresholds,
        dns_names=dns_names,
        expected_ports=expected_ports,
        server_host=server_host,
        server_port=server_port,
    )


def problems(policy: Policy, interval: int | None, catalogue: Catalogue) -> list[str]:
    """Why an administrator's policy cannot be saved (empty: it can)."""
    found = policy_problems(policy, catalogue)
    for check_id, overrides in policy.thresholds.items():
        spec = catalogue.by_id.get(check_id)
        if spec is None:
            continue
        merged = catalogue.thresholds(check_id, policy)
        wb, fb = merged.get("warn_below"), merged.get("fail_below")
        touched = set(overrides)
        if wb is not None and fb is not None and fb > wb and touched & {"warn_below", "fail_below"}:
            found.append(f"thresholds: {check_id} fail_below ({fb:g}) is above warn_below ({wb:g})")
        wa, fa = merged.get("warn_at"), merged.get("fail_at")
        if wa is not None and fa is not None and fa < wa and touched & {"warn_at", "fail_at"}:
            found.append(f"thresholds: {check_id} fail_at ({fa:g}) is below warn_at ({wa:g})")
    if interval is not None and not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        found.append(f"interval: {interval} s is outside {MIN_INTERVAL}..{MAX_INTERVAL} s")
    if len(set(policy.disabled)) != len(policy.disabled):
        found.append("disabled: a test is listed twice")
    return found
