"""The broker's address: one AMQP URL naming one host or the nodes of a cluster, split into one
URL per host; a bad list is refused at start with a message naming the variable and never the
password."""

from __future__ import annotations

import pytest

from gateway.bus.address import BrokerHost, broker_hosts, describe
from gateway.config import load_settings
from gateway.errors import ConfigError


def test_one_host_is_kept_exactly_as_written() -> None:
    for url in ("amqp://u:p@broker:5672/", "amqp://x", "amqps://u@h/vh?heartbeat=5"):
        (only,) = broker_hosts(url)
        assert only.url == url
    assert broker_hosts("amqp://x")[0] == BrokerHost("amqp://x", "x", 5672)
    assert broker_hosts("amqps://x/")[0].port == 5671


def test_several_hosts_each_get_the_credentials_virtual_host_and_query() -> None:
    hosts = broker_hosts("amqp://gw:s%40cret@h1:5701, h2:5702,h3/prov?heartbeat=10")
    assert [h.url for h in hosts] == [
        "amqp://gw:s%40cret@h1:5701/prov?heartbeat=10",
        "amqp://gw:s%40cret@h2:5702/prov?heartbeat=10",
        "amqp://gw:s%40cret@h3/prov?heartbeat=10",
    ]
    assert [h.where for h in hosts] == ["h1:5701", "h2:5702", "h3:5672"]
    assert describe(hosts) == "RabbitMQ at h1:5701, h2:5702, h3:5672 (a cluster)"
    assert describe(hosts[:1]) == "RabbitMQ at h1:5701"


def test_ipv6_hosts_are_written_in_brackets() -> None:
    hosts = broker_hosts("amqp://[::1]:5701,[fd00::2]/")
    assert [h.where for h in hosts] == ["[::1]:5701", "[fd00::2]:5672"]
    assert hosts[0].url == "amqp://[::1]:5701/"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h1/", "must start with amqp:// or amqps://"),
        ("h1:5672", "must start with amqp:// or amqps://"),
        ("amqp://u:secret@h1,,h2/", "host 2 of 3 is empty"),
        ("amqp://u:secret@h1,h2,/", "host 3 of 3 is empty"),
        ("amqp://u:secret@/", "the host is empty"),
        ("amqp://h1:56x2,h2/", "host 1 of 2 has a port that is not 1-65535 ('56x2')"),
        ("amqp://h1:70000/", "port that is not 1-65535"),
        ("amqp://h1:/", "the host has an empty port"),
        ("amqp://h1,:5672/", "host 2 of 2 has no name"),
        ("amqp://h1:5672,h1/", "names h1:5672 twice"),
        ("amqp://::1/", "write an IPv6 address in brackets"),
        ("amqp://[::1/", "does not close it"),
        ("amqp://h 1/", "is not a host name"),
    ],
)
def test_a_bad_list_says_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        broker_hosts(url)
    assert says in str(caught.value)


def test_a_bad_url_stops_the_gateway_at_start_naming_the_variable_not_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"GATEWAY_AMQP_URL": "amqp://gw:hunter2@h1:5701,,h3:5703/"})
    message = str(caught.value)
    assert "GATEWAY_AMQP_URL: host 2 of 3 is empty" in message
    assert "hunter2" not in message
    settings = load_settings({"GATEWAY_AMQP_URL": "amqp://gw:hunter2@h1:5701,h2:5702/"})
    assert settings.amqp_url == "amqp://gw:hunter2@h1:5701,h2:5702/"
