"""How an outgoing call's URL becomes its peer (issue 22): ``_outgoing.split_url`` reads
the scheme, host and port of an absolute URL by RFC 3986's authority rule (section 3.2:
``[ userinfo "@" ] host [ ":" port ]``, an IPv6 literal in brackets), with the scheme's
default port (RFC 9110, 4.2: 80 for http, 443 for https)."""

from __future__ import annotations

import pytest

from wideevents.integrations import _outgoing


@pytest.mark.parametrize("url,expected", [
    ("http://search-vector.internal:8081/v1?q=1", ("http", "search-vector.internal", 8081)),
    ("HTTPS://Api.Example.COM/path", ("https", "api.example.com", 443)),
    ("http://[::1]:9200/_search", ("http", "::1", 9200)),
    ("http://[fe80::1]/", ("http", "fe80::1", 80)),
    ("http://host?x=1:2", ("http", "host", 80)),
    ("http://host#frag:3", ("http", "host", 80)),
    ("http://user:pw@host:8443/p", ("http", "host", 8443)),
    ("http://host:notaport/", ("http", "host", 80)),
    ("not a url", ("", "", 0)),
])
def test_split_url_reads_the_authority(url: str, expected: tuple[str, str, int]) -> None:
    """The same answer on the first call and from the per-origin cache on the second."""
    assert [expected, expected] == [_outgoing.split_url(url), _outgoing.split_url(url)]


def test_userinfo_is_never_kept_in_the_cache() -> None:
    """A URL with credentials is parsed each time: its userinfo is not held in memory."""
    _outgoing.split_url("http://admin:s3cr3t-password@db.internal:5432/")
    assert [] == [k for k in _outgoing._split_cache if "s3cr3t" in k]
