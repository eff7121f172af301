"""Which hosts and addresses a site's crawl may reach: pure functions, no Scrapy.

A request may go only to a host inside the site's `allowed_domains` (the domain or a
subdomain, Scrapy's rule). On top of that, an address that is not on the public
internet (loopback, private, link-local, carrier-grade NAT, reserved ...) is reached only
when the site file lists it, or the host name that leads to it, exactly: a subdomain
whose DNS points at 10.0.0.5, a redirect to 169.254.169.254 (a cloud's metadata service)
or a page's `<base href="http://127.0.0.1:8080/">` must not turn the crawler into a
probe of the network it runs in. crawler.boundary and crawler.resolver apply this.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from functools import lru_cache
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(host: str) -> IPAddress | None:
    """The IP address a host literally is (IPv4-mapped IPv6 taken as its IPv4), or None."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def internal_kind(address: IPAddress) -> str | None:
    """What kind of non-public address this is (None: a public one)."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def is_allowed_host(host: str, domains: Iterable[str]) -> bool:
    """Scrapy's rule: the domain itself or any subdomain of it; IPs match exactly."""
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def is_listed(host: str, listed: Collection[str]) -> bool:
    return host.lower().rstrip(".").strip("[]") in listed


def refusal(url: str, allowed_domains: Collection[str]) -> str | None:
    """Why a request to `url` must not be made for a site, or None when it may."""
    parts = urlsplit(url)
    return _refusal(parts.scheme, parts.hostname or "", tuple(allowed_domains))


@lru_cache(maxsize=4096)
def _refusal(scheme: str, host: str, allowed_domains: tuple[str, ...]) -> str | None:
    """`refusal` by scheme and host: every request is checked twice (scheduled, sent), and
    a site's requests share a handful of hosts."""
    if scheme not in ("http", "https"):
        return f"{scheme or 'no'} scheme: only http and https are fetched"
    host = host.rstrip(".")
    if not host:
        return "no host"
    if not is_allowed_host(host, allowed_domains):
        return f"{host} is not in the site's allowed_domains"
    address = parse_address(host)
    if address is not None:
        return address_refusal(host, address, allowed_domains)
    return None


def address_refusal(host: str, address: IPAddress, listed: Collection[str]) -> str | None:
    """Why `host`, at `address`, must not be reached: a non-public address that neither
    the host name nor the address itself is listed for."""
    kind = internal_kind(address)
    if kind is None or is_listed(host, listed) or str(address) in listed:
        return None
    shown = host if host == str(address) else f"{host} ({address})"
    return f"{shown} is a {kind} address that the site file does not list"
